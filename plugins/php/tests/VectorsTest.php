<?php

use Soa\Instance;
use Soa\InvalidInstance;

$dir = __DIR__ . '/../../../registry/vectors';
$files = glob("$dir/*.json");

test('the vectors are there', function () use ($files) {
    check(count($files) >= 20, 'only ' . count($files) . ' vectors');
});

foreach ($files as $file) {
    $v = json_decode(file_get_contents($file), true);
    test('vector ' . basename($file), function () use ($v) {
        $raw = isset($v['value_base64']) ? base64_decode($v['value_base64']) : $v['value'];
        if ($v['valid']) {
            $expect = $v['expect'];
            $expect['started_at'] = (float) $expect['started_at'];
            check_same($expect, Instance::parse($raw, $v['key'], $v['prefix'])->toArray());
        } else {
            $e = check_throws(InvalidInstance::class, fn () => Instance::parse($raw, $v['key'], $v['prefix']));
            check_same($v['error'], $e->getReason(), $e->getMessage());
        }
    });
}

test('leaving is read', function () {
    check(Instance::parse('{"service":"a","host":"h","port":1,"leaving":true}')->leaving);
    check(!Instance::parse('{"service":"a","host":"h","port":1,"leaving":"yes"}')->leaving);
});

test('an integral float is not an integer, as in Python', function () {
    foreach (['1.0', '1e3'] as $port) {
        $e = check_throws(InvalidInstance::class, fn () => Instance::parse("{\"service\":\"a\",\"host\":\"h\",\"port\":$port}"));
        check_same('bad_type', $e->getReason());
    }
});

test('the first faulty field wins', function () {
    $e = check_throws(InvalidInstance::class, fn () => Instance::parse('{"service":"a","host":"h","port":"1","protocol":"x"}'));
    check_same('bad_type', $e->getReason());
    $e = check_throws(InvalidInstance::class, fn () => Instance::parse('{"service":"a","host":"h","port":1} x'));
    check_same('not_json', $e->getReason());
    $e = check_throws(InvalidInstance::class, fn () => Instance::parse('{}'));
    check_same('missing_field', $e->getReason());
    $e = check_throws(InvalidInstance::class, fn () => Instance::parse('{"service":"a\n","host":"h","port":1}'));
    check_same('bad_value', $e->getReason());
});

test('an instance survives the file cache round trip', function () {
    $i = Instance::parse('{"service":"a","host":"::1","port":1,"tags":{"zone":"b"},"started_at":5}');
    check_same($i->toArray(), Instance::fromArray(json_decode(json_encode($i->toArray()), true))->toArray());
    check_same('[::1]:1', $i->address());
});
