<?php
/**
 * PHPUnit bootstrap: the plugin's own autoloader (no Composer needed), then the tests' helpers.
 * Tests that need etcd read SOA_TEST_ETCD (an endpoint of a real etcd) and SOA_TEST_PREFIX
 * (a key prefix of their own); tests/test_plugin_php.py sets both.
 */

require __DIR__ . '/../src/autoload.php';
Soa\Autoload::addPsr4('Soa\\Tests\\', __DIR__);
