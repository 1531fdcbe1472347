<?php

use Soa\Balancer;
use Soa\Instance;

function inst(string $host, int $weight): Instance
{
    return new Instance('s', $host, 1, $weight);
}

function picks(Balancer $b, array $set, int $n, array $skip = []): string
{
    $out = '';
    for ($i = 0; $i < $n; $i++) {
        $out .= $b->pick($set, $skip)?->host ?? '-';
    }
    return $out;
}

test('smooth weighted round robin interleaves by weight', function () {
    check_same('aabacaa', picks(new Balancer(false), [inst('a', 5), inst('b', 1), inst('c', 1)], 7));
    check_same('ababab', picks(new Balancer(false), [inst('a', 100), inst('b', 100)], 6));
});

test('a random start still gives each its share', function () {
    $set = [inst('a', 2), inst('b', 1)];
    $firsts = [];
    for ($n = 0; $n < 60; $n++) {
        $seq = picks(new Balancer(), $set, 30);
        check_same(20, substr_count($seq, 'a'), $seq);
        $firsts[$seq[0]] = true;
    }
    check(count($firsts) === 2, 'every new balancer started at the same instance');
});

test('weight 0 is never picked; an empty set gives null', function () {
    check_same('bbbb', picks(new Balancer(), [inst('a', 0), inst('b', 3)], 4));
    check_same(null, (new Balancer())->pick([inst('a', 0)]));
    check_same(null, (new Balancer())->pick([]));
});

test('skipped addresses are left out', function () {
    $set = [inst('a', 1), inst('b', 1)];
    check_same('bbb', picks(new Balancer(), $set, 3, ['a:1' => true]));
    check_same(null, (new Balancer())->pick($set, ['a:1' => true, 'b:1' => true]));
});
