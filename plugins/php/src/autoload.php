<?php
/**
 * PSR-4 autoloading for machines without Composer (composer.json maps the same Soa\ => src/):
 * Soa\ from this folder, Thrift\ from Apache Thrift's PHP
 * library (Debian's php-thrift puts it in /usr/lib/php; set SOA_THRIFT_LIB to use another copy),
 * and Soa\Autoload::addPsr4() for generated code:
 *
 *   require 'plugins/php/src/autoload.php';
 *   Soa\Autoload::addPsr4('Shop\\', __DIR__ . '/gen-php/Shop');
 */

namespace Soa;

final class Autoload
{
    /** @var array<string, string> namespace prefix => folder */
    private static array $prefixes = [];
    private static bool $registered = false;

    /** Classes under namespace $prefix from $dir; '' for code generated without a namespace. */
    public static function addPsr4(string $prefix, string $dir): void
    {
        $prefix = trim($prefix, '\\');
        self::$prefixes[$prefix === '' ? '' : $prefix . '\\'] = rtrim($dir, '/');
        if (!self::$registered) {
            spl_autoload_register([self::class, 'load']);
            self::$registered = true;
        }
    }

    public static function load(string $class): void
    {
        foreach (self::$prefixes as $prefix => $dir) {
            if (strncmp($class, $prefix, strlen($prefix)) === 0) {
                $file = $dir . '/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
                if (is_file($file)) {
                    require $file;
                    return;
                }
            }
        }
    }

    /** Where Apache Thrift's PHP library is: SOA_THRIFT_LIB, or Debian's php-thrift. */
    public static function thriftLib(): string
    {
        $env = getenv('SOA_THRIFT_LIB');
        foreach ([$env ?: null, '/usr/lib/php', '/usr/share/php/Thrift'] as $dir) {
            if ($dir !== null && is_file($dir . '/Transport/TSocket.php')) {
                return $dir;
            }
        }
        throw new \RuntimeException(
            'Apache Thrift\'s PHP library is not installed: apt-get install php-thrift (or set SOA_THRIFT_LIB)'
        );
    }
}

Autoload::addPsr4('Soa\\', __DIR__);
Autoload::addPsr4('Thrift\\', Autoload::thriftLib());
