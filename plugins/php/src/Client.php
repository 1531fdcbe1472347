<?php

namespace Soa;

use Soa\Balancer\Balancer;
use Soa\Balancer\Balancers;
use Soa\Balancer\Inflight;
use Soa\Balancer\LeastInflight;
use Thrift\Exception\TApplicationException;
use Thrift\Exception\TException;
use Thrift\Exception\TProtocolException;
use Thrift\Exception\TTransportException;

/**
 * Calls one service's instances through Apache Thrift generated client code:
 *
 *   $catalog = new Soa\Client($registry, 'catalog', Shop\Catalog\CatalogServiceClient::class,
 *       ['idempotent' => ['get_product']]);
 *   $product = $catalog->get_product('p-1');           // or ->call('get_product', ['p-1'])
 *
 * Each call picks a usable instance with the balancer, over a pooled (by default persistent)
 * connection, within one deadline (timeout_ms) for the whole call, retries included:
 * - a failed connect (nothing sent) goes to the next untried instance, up to 3 times;
 * - after the request was sent, only methods named in `idempotent` are retried, at most
 *   `retries` times, each paid from a retry budget (RetryBudget);
 * - `wrong-target` from the server (not executed) is retried elsewhere and drops the instance;
 * - IDL exceptions and TApplicationException are answers: they pass through untouched.
 * Instances whose idl_hash differs from this client's (idl_hash option, or the IDL_HASH constant
 * of the SoaIdl class that `soa gen` writes next to the generated code) are used with one warning
 * (idl_mismatch 'warn') or left out ('exclude'). Consecutive failures eject an instance (Outliers).
 *
 * Options: balancer (round_robin), timeout_ms (1000), connect_timeout_ms (250), retries (2),
 * retry_budget (0.1), idempotent ([]), eject_after (3), eject_base_ms (500), eject_cap_ms
 * (30000), idl_hash, idl_class, idl_mismatch ('warn'), persist (true), idle_timeout (60 s),
 * tls ([ca, cert, key, server_name], for instances with "tls": true), hash_key (an argument's
 * position or name, or a callable(method, args): ?string), caller (sent as soa-caller),
 * max_frame_bytes (16 MiB), logger (callable(string)), on_connect_error (callable(Instance,
 * Throwable)).
 *
 * Errors: NoInstanceAvailable, TransportError (and RpcTimeout), RetryError (more than one
 * attempt failed), ConfigError (a bad option); plus the IDL's own exceptions.
 */
final class Client
{
    public const UNSENT_RETRIES = 3;

    private Balancer $balancer;
    private Inflight $inflight;
    private Pool $pool;
    private Outliers $outliers;
    private RetryBudget $budget;
    private ?Instance $last = null;
    private int $timeoutMs;
    private int $retries;
    /** @var array<string, true> */
    private array $idempotent;
    private string $idlHash;
    private bool $exclude;
    /** @var callable */
    private $logger;
    /** @var callable|null */
    private $onConnectError;
    /** @var callable|null */
    private $hashKey = null;
    /** @var array<string, string> */
    private array $extraHeaders = [];
    /** @var array<string, true> warned "address|hash" */
    private array $warned = [];
    /** @var Instance[]|null */
    private ?array $lastSet = null;
    /** @var Instance[] */
    private array $usable = [];
    /** @var array<string, true> methods known to exist on the generated client */
    private array $methods = [];
    private bool $countInflight;

    /**
     * @param Registry|Instance[] $source where instances come from: a Registry, or a fixed list
     * @param class-string $clientClass the generated client, e.g. CatalogServiceClient::class
     */
    public function __construct(
        private Registry|array $source,
        private string $service,
        private string $clientClass,
        array $options = [],
    ) {
        $this->inflight = new Inflight();
        $balancer = $options['balancer'] ?? 'round_robin';
        $this->balancer = $balancer instanceof Balancer ? $balancer : Balancers::byName($balancer, $this->inflight);
        if ($this->balancer instanceof LeastInflight) {
            $this->inflight = $this->balancer->inflight();
        }
        $this->countInflight = $this->balancer instanceof LeastInflight; // only it reads the counts
        $this->timeoutMs = self::positive($options, 'timeout_ms', 1000);
        $this->retries = (int) ($options['retries'] ?? 2);
        $this->idempotent = array_fill_keys($options['idempotent'] ?? [], true);
        $this->budget = new RetryBudget((float) ($options['retry_budget'] ?? 0.1));
        $this->outliers = new Outliers(
            self::positive($options, 'eject_after', 3),
            (float) ($options['eject_base_ms'] ?? 500) / 1000,
            (float) ($options['eject_cap_ms'] ?? 30000) / 1000,
        );
        $this->pool = new Pool(
            (bool) ($options['persist'] ?? true),
            (float) ($options['idle_timeout'] ?? 60.0),
            self::positive($options, 'connect_timeout_ms', 250),
            $options['tls'] ?? null,
            self::positive($options, 'max_frame_bytes', 16 << 20),
        );
        $this->logger = $options['logger'] ?? static fn (string $m) => error_log($m);
        $this->onConnectError = $options['on_connect_error'] ?? null;
        $mismatch = $options['idl_mismatch'] ?? 'warn';
        if (!in_array($mismatch, ['warn', 'exclude'], true)) {
            throw new ConfigError("idl_mismatch: expected warn or exclude, got \"$mismatch\"");
        }
        $this->exclude = $mismatch === 'exclude';
        $this->idlHash = $options['idl_hash'] ?? self::generatedIdlHash($options['idl_class'] ?? null, $clientClass);
        $this->hashKey = self::hashKeyOf($options['hash_key'] ?? null, $clientClass);
        if (isset($options['caller'])) {
            $this->extraHeaders['soa-caller'] = (string) $options['caller'];
        }
        if (!class_exists($clientClass)) {
            throw new ConfigError("client class $clientClass: not found (is the generated code autoloaded?)");
        }
    }

    /** $client->method(...$args) is $client->call('method', $args). */
    public function __call(string $method, array $args): mixed
    {
        return $this->call($method, $args);
    }

    /**
     * Calls $method with $args on an instance of the service and returns its result.
     *
     * @param array{timeout_ms?: int, key?: string|int|null} $options per call: its deadline, and
     *        the consistent_hash key (overrides hash_key)
     * @throws NoInstanceAvailable|TransportError|RetryError|DiscoveryError, or the IDL's exceptions
     */
    public function call(string $method, array $args = [], array $options = []): mixed
    {
        if (!isset($this->methods[$method])) {
            if (!method_exists($this->clientClass, $method)) {
                throw new \BadMethodCallException("{$this->clientClass} has no method $method");
            }
            $this->methods[$method] = true;
        }
        $deadline = microtime(true) + ($options['timeout_ms'] ?? $this->timeoutMs) / 1000;
        $key = array_key_exists('key', $options) ? self::render($options['key'])
            : ($this->hashKey !== null ? self::render(($this->hashKey)($method, $args)) : null);
        $usable = $this->usable();
        $this->budget->deposit();
        $tried = [];
        $attempts = [];
        $unsentLeft = self::UNSENT_RETRIES;
        $sentLeft = isset($this->idempotent[$method]) ? $this->retries : 0;
        $error = null;
        while (true) {
            $instance = $this->pick($usable, $tried, $error === null || !$error->sent, $key);
            if ($instance === null) {
                break;
            }
            try {
                return $this->attempt($instance, $method, $args, $deadline);
            } catch (TransportError $e) {
                $error = $e;
                $attempts[] = $e;
                $tried[$instance->address()] = true;
            }
            if ($error instanceof RpcTimeout && $error->refused) {
                break; // the server says it is late: a deadline error, never retried
            }
            if (!$error->sent && $unsentLeft > 0) {
                $unsentLeft--;
            } elseif ($error->sent && $sentLeft > 0 && $this->budget->withdraw()) {
                $sentLeft--;
            } else {
                break;
            }
            if (microtime(true) >= $deadline) {
                break;
            }
        }
        if (!$attempts) {
            throw new NoInstanceAvailable($this->noneReason($usable));
        }
        if (count($attempts) === 1) {
            throw $attempts[0];
        }
        if (!array_filter($attempts, fn ($e) => $e->sent)) {
            $tried = array_keys($tried);
            throw new NoInstanceAvailable("soa: no instance of {$this->service} reachable (tried "
                . implode(', ', $tried) . '): ' . end($attempts)->getMessage(), $tried, end($attempts));
        }
        throw new RetryError($this->service, $method, $attempts);
    }

    /** The instance that served (or refused) the most recent attempt; null before the first. */
    public function lastInstance(): ?Instance
    {
        return $this->last;
    }

    public function pool(): Pool
    {
        return $this->pool;
    }

    public function balancer(): Balancer
    {
        return $this->balancer;
    }

    /** One attempt on $instance. @throws TransportError; answers (IDL, TApplicationException) pass */
    private function attempt(Instance $instance, string $method, array $args, float $deadline): mixed
    {
        $address = $instance->address();
        $this->last = $instance;
        try {
            $connection = $this->pool->acquire($instance, $deadline);
        } catch (TransportError $e) {
            if (!$e instanceof RpcTimeout) {
                $this->outliers->failed($address);
            }
            if ($this->onConnectError !== null) {
                ($this->onConnectError)($instance, $e);
            }
            throw $e;
        }
        if ($this->countInflight) {
            $this->inflight->start($address);
        }
        try {
            $connection->begin($deadline, $instance, $this->extraHeaders);
            $result = $connection->client($this->clientClass)->$method(...$args);
        } catch (TransportError $e) {
            $this->failedOn($instance, $connection, $e);
            throw $e;
        } catch (TTransportException | TProtocolException $e) {
            $error = new TransportError($e->getMessage(), $address, true, $e);
            $this->failedOn($instance, $connection, $error);
            throw $error;
        } catch (TException $e) { // TApplicationException, or an exception the IDL declares
            $this->pool->release($connection);
            $this->outliers->answered($address);
            throw $e;
        } catch (\Throwable $e) { // a bad argument, half-written: the connection is not clean
            $this->pool->discard($connection);
            throw $e;
        } finally {
            if ($this->countInflight) {
                $this->inflight->finish($address);
            }
        }
        $this->pool->release($connection);
        $this->outliers->answered($address);
        return $result;
    }

    private function failedOn(Instance $instance, Connection $connection, TransportError $e): void
    {
        if ($e instanceof RpcTimeout && $e->refused) {
            $this->pool->release($connection); // the frame was read whole: the stream is clean
            return;
        }
        $this->pool->discard($connection);
        if ($e instanceof WrongTarget) {
            $this->outliers->drop($instance);
            ($this->logger)("soa: {$e->getMessage()}; not using it again");
            $this->lastSet = null; // rebuild the usable set without it
        } elseif ($e instanceof RpcTimeout) {
            $this->outliers->failed($instance->address());
        }
    }

    /**
     * The next instance: usable, not dropped, not tried by this call; ejected ones only when
     * nothing else is left; after a sent failure ($unsent false) a tried one when no untried is.
     */
    private function pick(array $usable, array $tried, bool $unsent, ?string $key): ?Instance
    {
        if (!$tried && $usable && $this->outliers->isQuiet()) {
            return $this->balancer->pick($usable, $key); // the common case: nothing to leave out
        }
        $now = microtime(true);
        $open = [];
        $ejected = [];
        foreach ($usable as $i) {
            if (isset($tried[$i->address()]) || $this->outliers->isDropped($i)) {
                continue;
            }
            if ($this->outliers->isEjected($i->address(), $now)) {
                $ejected[] = $i;
            } else {
                $open[] = $i;
            }
        }
        $candidates = $open ?: $ejected;
        if (!$candidates && !$unsent && $tried) {
            $candidates = array_values(array_filter($usable, fn ($i) => !$this->outliers->isDropped($i)));
        }
        return $candidates ? $this->balancer->pick($candidates, $key) : null;
    }

    /** The source's instances that may take calls: weight > 0, and the IDL policy. */
    private function usable(): array
    {
        $set = is_array($this->source) ? $this->source : $this->source->instances($this->service);
        if ($set === $this->lastSet) {
            return $this->usable;
        }
        $usable = [];
        foreach ($set as $i) {
            if ($i->weight > 0 && !$i->leaving && !$this->outliers->isDropped($i) && $this->idlAccepts($i)) {
                $usable[] = $i;
            }
        }
        $this->pool->retain(array_map(fn (Instance $i) => $i->address(), $set));
        $this->lastSet = $set;
        return $this->usable = $usable;
    }

    private function idlAccepts(Instance $i): bool
    {
        if ($i->idlHash === '' || $this->idlHash === '' || $i->idlHash === $this->idlHash) {
            return true;
        }
        $mark = $i->address() . '|' . $i->idlHash;
        if (!isset($this->warned[$mark])) {
            $this->warned[$mark] = true;
            ($this->logger)("soa: {$this->service}: {$i->address()} serves IDL {$i->idlHash} but this client has "
                . "{$this->idlHash}; " . ($this->exclude ? 'excluding it (idl_mismatch: exclude)' : 'using it anyway'));
        }
        return !$this->exclude;
    }

    private function noneReason(array $usable): string
    {
        $set = $this->lastSet ?? [];
        if (!$set) {
            return "soa: no instance of {$this->service} available: no instances registered";
        }
        return "soa: no instance of {$this->service} available: none of the " . count($set)
            . ' registered instance(s) can take calls (IDL mismatch, weight 0 or wrong target)';
    }

    /** SoaIdl::IDL_HASH from $class, or from the SoaIdl class next to the generated client. */
    private static function generatedIdlHash(?string $class, string $clientClass): string
    {
        if ($class === null) {
            $ns = strrpos($clientClass, '\\');
            $class = ($ns === false ? '' : substr($clientClass, 0, $ns) . '\\') . 'SoaIdl';
            if (!class_exists($class)) {
                return '';
            }
        } elseif (!class_exists($class)) {
            throw new ConfigError("idl_class $class: not found");
        }
        return defined("$class::IDL_HASH") ? (string) constant("$class::IDL_HASH") : '';
    }

    /** hash_key as a callable(method, args), or null. */
    private static function hashKeyOf(mixed $option, string $clientClass): ?callable
    {
        if ($option === null || is_callable($option)) {
            return $option;
        }
        if (is_int($option)) {
            return static fn (string $method, array $args) => $args[$option] ?? null;
        }
        if (is_string($option)) { // an argument name: its position, per method
            $positions = [];
            return static function (string $method, array $args) use ($option, $clientClass, &$positions) {
                if (!array_key_exists($method, $positions)) {
                    $positions[$method] = null;
                    foreach ((new \ReflectionMethod($clientClass, $method))->getParameters() as $p) {
                        if ($p->getName() === $option) {
                            $positions[$method] = $p->getPosition();
                        }
                    }
                }
                $at = $positions[$method];
                return $at === null ? null : ($args[$at] ?? null);
            };
        }
        throw new ConfigError('hash_key: expected an argument position, an argument name or a callable');
    }

    /** A hash key as text: integers in decimal, strings as they are. */
    private static function render(mixed $key): ?string
    {
        return match (true) {
            $key === null => null,
            is_string($key) => $key,
            is_int($key) => (string) $key,
            is_bool($key) => $key ? 'True' : 'False',
            is_float($key) => (string) $key,
            default => null,
        };
    }

    private static function positive(array $options, string $name, int $default): int
    {
        $v = $options[$name] ?? $default;
        if (!is_int($v) || $v < 1) {
            throw new ConfigError("$name: expected a positive integer, got " . var_export($v, true));
        }
        return $v;
    }
}
