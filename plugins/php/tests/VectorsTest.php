<?php

namespace Soa\Tests;

use PHPUnit\Framework\TestCase;
use Soa\Balancer\ConsistentHash;
use Soa\Instance;
use Soa\InvalidInstance;

/** registry/vectors/*.json (values) and registry/vectors/hash/*.json (the ring), shared by every language. */
final class VectorsTest extends TestCase
{
    private const DIR = __DIR__ . '/../../../registry/vectors';

    public static function values(): array
    {
        $out = [];
        foreach (glob(self::DIR . '/*.json') as $file) {
            $out[basename($file)] = [json_decode(file_get_contents($file), true)];
        }
        return $out;
    }

    public static function rings(): array
    {
        $out = [];
        foreach (glob(self::DIR . '/hash/*.json') as $file) {
            $out[basename($file)] = [json_decode(file_get_contents($file), true)];
        }
        return $out;
    }

    public function testTheVectorsAreThere(): void
    {
        $this->assertGreaterThanOrEqual(25, count(self::values()));
        $this->assertGreaterThanOrEqual(5, count(self::rings()));
    }

    /** @dataProvider values */
    public function testValue(array $v): void
    {
        $raw = isset($v['value_base64']) ? base64_decode($v['value_base64']) : $v['value'];
        if ($v['valid']) {
            $expect = $v['expect'];
            $expect['started_at'] = (float) $expect['started_at'];
            $got = Instance::parse($raw, $v['key'], $v['prefix'])->toArray();
            ksort($expect);
            ksort($got);
            $this->assertSame($expect, $got, $v['description']);
        } else {
            try {
                Instance::parse($raw, $v['key'], $v['prefix']);
                $this->fail("parsed, but expected {$v['error']}: {$v['description']}");
            } catch (InvalidInstance $e) {
                $this->assertSame($v['error'], $e->getReason(), $e->getMessage());
            }
        }
    }

    /** @dataProvider rings */
    public function testRing(array $v): void
    {
        $instances = array_map(fn ($i) => new Instance('s', $i['host'], $i['port'], $i['weight'] ?? 100), $v['instances']);
        $usable = array_values(array_filter($instances, fn ($i) => $i->weight > 0));
        $ring = new ConsistentHash();
        $this->assertNotEmpty($v['keys']);
        foreach ($v['keys'] as $key => $address) {
            $this->assertSame($address, $ring->pick($usable, (string) $key)->address(), "key $key: {$v['description']}");
        }
    }

    public function testHash64IsMd5sFirstEightBytesBigEndian(): void
    {
        $this->assertSame(substr(md5('abc'), 0, 16), ConsistentHash::hash64('abc'));
        $this->assertSame('900150983cd24fb0', ConsistentHash::hash64('abc'));
    }

    public function testLeavingIsRead(): void
    {
        $this->assertTrue(Instance::parse('{"service":"a","host":"h","port":1,"leaving":true}')->leaving);
        $this->assertFalse(Instance::parse('{"service":"a","host":"h","port":1,"leaving":"yes"}')->leaving);
    }

    public function testAnIntegralFloatIsNotAnInteger(): void
    {
        foreach (['1.0', '1e3'] as $port) {
            try {
                Instance::parse("{\"service\":\"a\",\"host\":\"h\",\"port\":$port}");
                $this->fail("port $port was accepted");
            } catch (InvalidInstance $e) {
                $this->assertSame('bad_type', $e->getReason());
            }
        }
    }

    public function testTheNewFieldsAndTheirDefaults(): void
    {
        $i = Instance::parse('{"service":"a","host":"::1","port":1,"id":"x-1","theader":true,"tls":false,"metrics_port":9}');
        $this->assertSame(['x-1', true, false, 9, '[::1]:1'], [$i->id, $i->theader, $i->tls, $i->metricsPort, $i->address()]);
        $d = Instance::parse('{"service":"a","host":"h","port":1,"id":null,"theader":null}');
        $this->assertSame(['', false, false, 0], [$d->id, $d->theader, $d->tls, $d->metricsPort]);
    }
}
