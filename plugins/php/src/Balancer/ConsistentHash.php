<?php

namespace Soa\Balancer;

use Soa\Instance;

/**
 * consistent_hash, the ring of registry/BALANCING.md: hash64 is the first 8 bytes of MD5, big
 * endian, unsigned; kept here as 16 hex digits, whose byte order is the numeric order, so PHP's
 * signed integers never enter. Each instance owns max(1, floor(160 * weight / 100)) points at
 * hash64("{address}#{v}"); a key goes to the first point >= hash64(key), wrapping past the last.
 * A call without a key goes to a uniformly random instance. The ring is rebuilt only when the
 * set (addresses and weights) changes.
 */
final class ConsistentHash implements Balancer
{
    public const VNODES = 160;

    private string $signature = '';
    /** @var string[] sorted positions (hex) */
    private array $points = [];
    /** @var Instance[] owner of each point */
    private array $owners = [];

    public function name(): string
    {
        return 'consistent_hash';
    }

    /** hash64 of $data as 16 lower-case hex digits. */
    public static function hash64(string $data): string
    {
        return substr(md5($data), 0, 16);
    }

    public function pick(array $usable, ?string $key = null): Instance
    {
        if ($key === null) {
            return $usable[random_int(0, count($usable) - 1)];
        }
        $this->build($usable);
        $h = self::hash64($key);
        $lo = 0;
        $hi = count($this->points);
        while ($lo < $hi) { // the first point >= $h
            $mid = ($lo + $hi) >> 1;
            if (strcmp($this->points[$mid], $h) < 0) {
                $lo = $mid + 1;
            } else {
                $hi = $mid;
            }
        }
        return $this->owners[$lo < count($this->points) ? $lo : 0];
    }

    /** @param Instance[] $usable */
    private function build(array $usable): void
    {
        $signature = '';
        foreach ($usable as $i) {
            $signature .= $i->address() . '=' . $i->weight . ' ';
        }
        if ($signature === $this->signature) {
            return;
        }
        $ring = [];
        foreach ($usable as $i) {
            $address = $i->address();
            $vnodes = max(1, intdiv(self::VNODES * $i->weight, 100));
            for ($v = 0; $v < $vnodes; $v++) {
                $ring[] = [self::hash64("$address#$v"), $address, $i];
            }
        }
        usort($ring, fn ($a, $b) => strcmp($a[0], $b[0]) ?: strcmp($a[1], $b[1]));
        $this->points = array_column($ring, 0);
        $this->owners = array_column($ring, 2);
        $this->signature = $signature;
    }
}
