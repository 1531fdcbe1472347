<?php

namespace Soa\Tests;

use PHPUnit\Framework\TestCase;
use Soa\Cache\ApcuCache;
use Soa\Cache\FileCache;

/**
 * The two instance caches, and the file cache's refusal of anything another user could have
 * written: a folder or file of another owner, with group/other permissions, or a symlink.
 */
final class CacheTest extends TestCase
{
    private array $cleanup = [];
    private array $log = [];

    protected function tearDown(): void
    {
        foreach ($this->cleanup as $fn) {
            $fn();
        }
    }

    private function dir(): string
    {
        [$dir, $remove] = Support::tempDir();
        $this->cleanup[] = $remove;
        return $dir;
    }

    private function cache(string $dir, ?int $uid = null): FileCache
    {
        return new FileCache($dir, function (string $m) {
            $this->log[] = $m;
        }, $uid);
    }

    /** Makes $path owned by someone else: for real (chown) as root, else a cache expecting another uid. */
    private function foreignCache(string $dir, string $path): FileCache
    {
        if (posix_geteuid() === 0) {
            $this->assertTrue(chown($path, 65534));
            return $this->cache($dir);
        }
        return $this->cache($dir, posix_geteuid() + 1);
    }

    public function testApcuIsEnabledForTheseTests(): void
    {
        $this->assertTrue(ApcuCache::available(), 'run php -d apc.enable_cli=1 /usr/bin/phpunit, with php-apcu installed');
    }

    public function testApcuRoundTrip(): void
    {
        $cache = new ApcuCache();
        $key = 'k-' . bin2hex(random_bytes(4));
        $this->assertNull($cache->get($key));
        $cache->put($key, ['at' => 1.5, 'kvs' => [['a', 'b']]], 5);
        $this->assertSame(['at' => 1.5, 'kvs' => [['a', 'b']]], $cache->get($key));
        $this->assertSame('apcu', $cache->describe());
    }

    public function testFileRoundTripInAPrivateFolderItCreates(): void
    {
        $parent = $this->dir();
        $cache = $this->cache("$parent/cache");
        $this->assertNull($cache->get('k'));
        $this->assertDirectoryDoesNotExist("$parent/cache", 'a read creates nothing');
        $cache->put('k', ['at' => 2.5, 'kvs' => []], 5);
        $this->assertSame(['at' => 2.5, 'kvs' => []], $this->cache("$parent/cache")->get('k'));
        $this->assertSame(040700, stat("$parent/cache")['mode'] & 0170777);
        $this->assertSame(0100600, stat($cache->path('k'))['mode'] & 0170777);
        $this->assertSame([], $this->log);
    }

    public function testTheDefaultFolderIsPerUserAndPrivate(): void
    {
        $cache = new FileCache();
        $this->assertSame(sys_get_temp_dir() . '/soa-php-' . posix_geteuid(), $cache->dir());
    }

    public function testAFolderOfAnotherOwnerIsRefused(): void
    {
        $dir = $this->dir();
        (new FileCache($dir))->put('k', ['at' => 1, 'kvs' => []], 5);
        $cache = $this->foreignCache($dir, $dir);
        $this->assertNull($cache->get('k'));
        $cache->put('k2', ['at' => 1, 'kvs' => []], 5);
        $this->assertFileDoesNotExist("$dir/" . basename($cache->path('k2')));
        $this->assertStringContainsString('refusing the instance cache folder', implode("\n", $this->log));
        $this->assertStringContainsString('owned by uid', implode("\n", $this->log));
    }

    public function testAFolderOthersCanWriteIsRefused(): void
    {
        $dir = $this->dir();
        (new FileCache($dir))->put('k', ['at' => 1, 'kvs' => []], 5);
        chmod($dir, 0777);
        $this->assertNull($this->cache($dir)->get('k'));
        $this->assertStringContainsString('mode 0777 gives access to others', implode("\n", $this->log));
        chmod($dir, 0750);
        $this->log = [];
        $this->assertNull($this->cache($dir)->get('k'));
        $this->assertStringContainsString('mode 0750', implode("\n", $this->log));
    }

    public function testAFolderThatIsASymlinkIsRefused(): void
    {
        $dir = $this->dir();
        mkdir("$dir/real", 0700);
        symlink("$dir/real", "$dir/link");
        $cache = $this->cache("$dir/link");
        $cache->put('k', ['at' => 1, 'kvs' => []], 5);
        $this->assertSame([], glob("$dir/real/*"));
        $this->assertStringContainsString('symbolic link', implode("\n", $this->log));
    }

    public function testAFileOfAnotherOwnerIsIgnored(): void
    {
        $dir = $this->dir();
        $mine = $this->cache($dir);
        $mine->put('k', ['at' => 1, 'kvs' => []], 5);
        if (posix_geteuid() === 0) {
            $this->assertTrue(chown($mine->path('k'), 65534));
            $this->assertNull($this->cache($dir)->get('k'));
        } else {
            $this->fail('this test needs root, to give the file to another user (chown)');
        }
        $this->assertStringContainsString('ignoring the instance cache file', implode("\n", $this->log));
        $this->assertStringContainsString('owned by uid 65534', implode("\n", $this->log));
    }

    public function testAFileOthersCanWriteOrReadIsIgnored(): void
    {
        $dir = $this->dir();
        $cache = $this->cache($dir);
        $cache->put('k', ['at' => 1, 'kvs' => []], 5);
        foreach ([0666, 0644, 0620] as $mode) {
            chmod($cache->path('k'), $mode);
            $this->log = [];
            $this->assertNull($this->cache($dir)->get('k'), sprintf('mode %o', $mode));
            $this->assertStringContainsString(sprintf('mode %04o', $mode), implode("\n", $this->log));
        }
        chmod($cache->path('k'), 0400);
        $this->assertSame(['at' => 1, 'kvs' => []], $this->cache($dir)->get('k'));
    }

    public function testAFileThatIsASymlinkIsIgnored(): void
    {
        $dir = $this->dir();
        $cache = $this->cache($dir);
        $elsewhere = $this->dir() . '/planted.json';
        file_put_contents($elsewhere, json_encode(['at' => 1, 'kvs' => []]));
        chmod($elsewhere, 0600);
        symlink($elsewhere, $cache->path('k'));
        $this->assertNull($cache->get('k'));
        $this->assertStringContainsString('symbolic link', implode("\n", $this->log));
    }
}
