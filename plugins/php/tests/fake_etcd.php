<?php
/**
 * Router for `php -S`: etcd's /v3/kv/range over the keys in the JSON file named by
 * FAKE_ETCD_STATE ({"key": "value", ...}), which the test rewrites as it goes.
 */
if ($_SERVER['REQUEST_URI'] !== '/v3/kv/range') {
    http_response_code(404);
    return true;
}
$body = json_decode(file_get_contents('php://input'), true);
$prefix = base64_decode($body['key']);
$kvs = [];
foreach (json_decode(file_get_contents(getenv('FAKE_ETCD_STATE')), true) as $key => $value) {
    if (str_starts_with($key, $prefix)) {
        $kvs[] = ['key' => base64_encode($key), 'value' => base64_encode($value), 'mod_revision' => '1'];
    }
}
header('Content-Type: application/json');
echo json_encode(['header' => ['revision' => '1'], 'kvs' => $kvs]);
