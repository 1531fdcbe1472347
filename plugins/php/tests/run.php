<?php
/**
 * A tiny self-contained test runner (PHPUnit comes from Packagist, which is not reachable):
 * every tests/*Test.php file registers closures with test(); each runs in turn, a failure is an
 * exception. Prints one line per failure and a final "N passed, M failed"; exits 1 on failure.
 *
 *   php plugins/php/tests/run.php [filter]
 */

require __DIR__ . '/../src/autoload.php';

final class AssertionFailed extends Exception
{
}

$GLOBALS['soa_tests'] = [];

function test(string $name, callable $fn): void
{
    $GLOBALS['soa_tests'][] = [$name, $fn];
}

function check(bool $condition, string $message = 'assertion failed'): void
{
    if (!$condition) {
        throw new AssertionFailed($message);
    }
}

function check_same(mixed $expected, mixed $actual, string $message = ''): void
{
    if ($expected !== $actual) {
        throw new AssertionFailed(trim("$message expected " . var_export($expected, true)
            . ', got ' . var_export($actual, true)));
    }
}

/** Runs $fn, which must throw a $class; returns the exception. */
function check_throws(string $class, callable $fn): Throwable
{
    try {
        $fn();
    } catch (Throwable $e) {
        if ($e instanceof $class) {
            return $e;
        }
        throw new AssertionFailed("expected $class, got " . get_class($e) . ': ' . $e->getMessage());
    }
    throw new AssertionFailed("expected $class, nothing was thrown");
}

foreach (glob(__DIR__ . '/*Test.php') as $file) {
    require $file;
}

$filter = $argv[1] ?? '';
$passed = 0;
$failed = 0;
foreach ($GLOBALS['soa_tests'] as [$name, $fn]) {
    if ($filter !== '' && !str_contains($name, $filter)) {
        continue;
    }
    try {
        $fn();
        $passed++;
    } catch (Throwable $e) {
        $failed++;
        fwrite(STDOUT, "FAIL $name: " . get_class($e) . ': ' . $e->getMessage() . "\n");
        if (!$e instanceof AssertionFailed) {
            fwrite(STDOUT, $e->getTraceAsString() . "\n");
        }
    }
}
fwrite(STDOUT, "$passed passed, $failed failed\n");
exit($failed === 0 && $passed > 0 ? 0 : 1);
