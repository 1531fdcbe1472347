<?php

namespace Soa\Tests;

use PHPUnit\Framework\TestCase;
use Soa\Balancer\Balancers;
use Soa\Balancer\ConsistentHash;
use Soa\Balancer\Inflight;
use Soa\Balancer\LeastInflight;
use Soa\Balancer\RoundRobin;
use Soa\Balancer\WeightedRandom;
use Soa\Balancer\WeightedRoundRobin;
use Soa\ConfigError;
use Soa\Instance;

/** Each balancer of registry/BALANCING.md, on fixed sets (no I/O). */
final class BalancerTest extends TestCase
{
    private static function inst(string $host, int $weight = 100, int $port = 1): Instance
    {
        return new Instance('s', $host, $port, $weight);
    }

    private static function picks($balancer, array $set, int $n, ?string $key = null): string
    {
        $out = '';
        for ($i = 0; $i < $n; $i++) {
            $out .= $balancer->pick($set, $key)->host;
        }
        return $out;
    }

    public function testRoundRobinGoesInKeyOrderIgnoringWeights(): void
    {
        $set = [self::inst('a', 5), self::inst('b', 1), self::inst('c', 300)];
        $this->assertSame('abcabca', self::picks(new RoundRobin(0), $set, 7));
        $this->assertSame('cabc', self::picks(new RoundRobin(2), $set, 4));
    }

    public function testRoundRobinStartsAtARandomPlace(): void
    {
        $set = [self::inst('a'), self::inst('b'), self::inst('c')];
        $firsts = [];
        for ($n = 0; $n < 60; $n++) {
            $firsts[(new RoundRobin())->pick($set)->host] = true;
        }
        $this->assertCount(3, $firsts);
    }

    public function testSmoothWeightedRoundRobinInterleavesByWeight(): void
    {
        $this->assertSame('aabacaa', self::picks(new WeightedRoundRobin(false), [self::inst('a', 5), self::inst('b', 1), self::inst('c', 1)], 7));
        $this->assertSame('ababab', self::picks(new WeightedRoundRobin(false), [self::inst('a'), self::inst('b')], 6));
    }

    public function testSmoothWeightedRoundRobinFromARandomStartKeepsTheShares(): void
    {
        $set = [self::inst('a', 2), self::inst('b', 1)];
        $firsts = [];
        for ($n = 0; $n < 60; $n++) {
            $seq = self::picks(new WeightedRoundRobin(), $set, 30);
            $this->assertSame(20, substr_count($seq, 'a'), $seq);
            $firsts[$seq[0]] = true;
        }
        $this->assertCount(2, $firsts, 'every new balancer started at the same instance');
    }

    public function testWeightedRandomFollowsTheWeights(): void
    {
        $set = [self::inst('a', 100), self::inst('b', 300)];
        $seq = self::picks(new WeightedRandom(), $set, 4000);
        $share = substr_count($seq, 'b') / 4000;
        $this->assertEqualsWithDelta(0.75, $share, 0.04);
        $this->assertSame('aaaa', self::picks(new WeightedRandom(), [self::inst('a', 1)], 4));
    }

    public function testLeastInflightTakesTheLessLoadedOfTwo(): void
    {
        $set = [self::inst('a'), self::inst('b'), self::inst('c')];
        $inflight = new Inflight();
        $inflight->start('a:1');
        $inflight->start('a:1');
        $inflight->start('b:1');
        $balancer = new LeastInflight($inflight);
        $seq = self::picks($balancer, $set, 3000);
        // c wins every draw it is in (2/3 of draws), b wins the draws {a,b} (1/3), a never
        $this->assertSame(0, substr_count($seq, 'a'));
        $this->assertEqualsWithDelta(2 / 3, substr_count($seq, 'c') / 3000, 0.05);
        $inflight->finish('a:1');
        $inflight->finish('a:1');
        $inflight->finish('b:1');
        $this->assertSame(0, $inflight->of('a:1'));
        $even = self::picks($balancer, $set, 3000); // no load: uniform over the three
        foreach (['a', 'b', 'c'] as $h) {
            $this->assertEqualsWithDelta(1 / 3, substr_count($even, $h) / 3000, 0.05, $h);
        }
        $this->assertSame('aa', self::picks($balancer, [self::inst('a')], 2));
    }

    public function testConsistentHashKeepsKeysAndMovesFewWhenOneLeaves(): void
    {
        $four = [self::inst('10.0.0.1'), self::inst('10.0.0.2'), self::inst('10.0.0.3'), self::inst('10.0.0.4')];
        $ring = new ConsistentHash();
        $before = [];
        for ($k = 0; $k < 1000; $k++) {
            $before[$k] = $ring->pick($four, "user-$k")->host;
            $this->assertSame($before[$k], $ring->pick($four, "user-$k")->host);
        }
        $three = array_slice($four, 0, 3);
        $moved = 0;
        foreach ($before as $k => $host) {
            $now = $ring->pick($three, "user-$k")->host;
            if ($host !== '10.0.0.4') {
                $this->assertSame($host, $now, "key user-$k moved although its instance stayed");
            } else {
                $moved++;
            }
        }
        $this->assertEqualsWithDelta(250, $moved, 80);
        $hosts = [];
        for ($n = 0; $n < 200; $n++) { // no key: uniformly random
            $hosts[$ring->pick($four, null)->host] = true;
        }
        $this->assertCount(4, $hosts);
    }

    public function testByName(): void
    {
        foreach (Balancers::NAMES as $name) {
            $this->assertSame($name, Balancers::byName($name)->name());
        }
        $this->expectException(ConfigError::class);
        $this->expectExceptionMessage('balancer: expected one of round_robin');
        Balancers::byName('fastest');
    }
}
