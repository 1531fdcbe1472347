<?php

namespace Soa\Cache;

/**
 * One JSON file per entry in a private folder: by default {sys_get_temp_dir()}/soa-php-{uid},
 * created with mode 0700. The cache is trusted only if nobody else can have written it:
 * - the folder must be a real folder (not a symlink), owned by this process's effective uid,
 *   with no group or other permission bits; otherwise the whole cache is refused (one warning);
 * - each file must be a regular file (not a symlink) owned by the same uid, mode 0600 or
 *   stricter; otherwise it is ignored (one warning) and never read.
 * Files are written to a temporary name in the folder and renamed into place, so a reader never
 * sees half a file. The entry's age is the Registry's business (it bounds `at` by the TTLs).
 */
final class FileCache implements Cache
{
    private string $dir;
    private ?bool $usable = null;
    /** @var callable */
    private $logger;
    private int $uid;

    /**
     * @param string|null $dir the private folder; null for the per-user default
     * @param callable|null $logger takes one message
     * @param int|null $uid the owner to expect; the effective uid by default
     */
    public function __construct(?string $dir = null, ?callable $logger = null, ?int $uid = null)
    {
        $this->uid = $uid ?? self::euid();
        $this->dir = rtrim($dir ?? sys_get_temp_dir() . '/soa-php-' . $this->uid, '/');
        $this->logger = $logger ?? static fn (string $m) => error_log($m);
    }

    public function describe(): string
    {
        return "file:{$this->dir}";
    }

    public function dir(): string
    {
        return $this->dir;
    }

    /** The file an entry lives in. */
    public function path(string $key): string
    {
        return $this->dir . '/' . hash('sha256', $key) . '.json';
    }

    public function get(string $key): ?array
    {
        if (!$this->ready(false)) {
            return null;
        }
        $path = $this->path($key);
        clearstatcache(true, $path);
        $link = @lstat($path);
        if ($link === false) {
            return null;
        }
        $handle = @fopen($path, 'rb');
        if ($handle === false) {
            return null;
        }
        try {
            $stat = fstat($handle);
            $problem = self::problem($link, 0100000, 0077, $this->uid)
                ?? self::problem($stat, 0100000, 0077, $this->uid);
            if ($problem === null && ($link['ino'] !== $stat['ino'] || $link['dev'] !== $stat['dev'])) {
                $problem = 'replaced while opening';
            }
            if ($problem !== null) {
                ($this->logger)("soa: ignoring the instance cache file $path: $problem");
                return null;
            }
            $text = stream_get_contents($handle, 4 << 20);
        } finally {
            fclose($handle);
        }
        $entry = json_decode((string) $text, true);
        return is_array($entry) ? $entry : null;
    }

    public function put(string $key, array $entry, float $ttl): void
    {
        if (!$this->ready(true)) {
            return;
        }
        $tmp = @tempnam($this->dir, '.tmp-');
        if ($tmp === false) {
            return;
        }
        @chmod($tmp, 0600);
        if (@file_put_contents($tmp, json_encode($entry)) === false || !@rename($tmp, $this->path($key))) {
            @unlink($tmp);
        }
    }

    /** Whether the folder may be used; with $create, makes it when it is missing. */
    private function ready(bool $create): bool
    {
        if ($this->usable !== null) {
            return $this->usable;
        }
        clearstatcache(true, $this->dir);
        $stat = @lstat($this->dir);
        if ($stat === false) {
            if (!$create) {
                return false; // nothing cached yet; checked again on the first write
            }
            $old = umask(0077);
            $made = @mkdir($this->dir, 0700);
            umask($old);
            clearstatcache(true, $this->dir);
            $stat = @lstat($this->dir);
            if (!$made && $stat === false) {
                ($this->logger)("soa: cannot create the instance cache folder {$this->dir}; not caching");
                return $this->usable = false;
            }
        }
        $problem = self::problem($stat, 0040000, 0077, $this->uid);
        if ($problem !== null) {
            ($this->logger)("soa: refusing the instance cache folder {$this->dir}: $problem; not caching");
            return $this->usable = false;
        }
        return $this->usable = true;
    }

    /** Why $stat is not a $type (S_IFREG, S_IFDIR) owned by $uid without $forbidden bits; null if fine. */
    private static function problem(array $stat, int $type, int $forbidden, int $uid): ?string
    {
        if (($stat['mode'] & 0170000) !== $type) {
            return ($stat['mode'] & 0170000) === 0120000 ? 'it is a symbolic link' : 'not a ' . ($type === 0040000 ? 'folder' : 'regular file');
        }
        if ($stat['uid'] !== $uid) {
            return "owned by uid {$stat['uid']}, not $uid";
        }
        if (($stat['mode'] & $forbidden) !== 0) {
            return sprintf('mode %04o gives access to others (want %s)', $stat['mode'] & 0777, $type === 0040000 ? '0700' : '0600');
        }
        return null;
    }

    private static function euid(): int
    {
        if (function_exists('posix_geteuid')) {
            return posix_geteuid();
        }
        $probe = @tempnam(sys_get_temp_dir(), 'soa-uid-'); // no posix: who owns a file we make
        $uid = $probe !== false ? (int) (@stat($probe)['uid'] ?? -1) : -1;
        if ($probe !== false) {
            @unlink($probe);
        }
        return $uid;
    }
}
