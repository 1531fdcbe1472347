<?php

namespace Soa;

use Thrift\Exception\TException;
use Thrift\Protocol\TBinaryProtocol;
use Thrift\Protocol\TCompactProtocol;
use Thrift\Transport\TBufferedTransport;
use Thrift\Transport\TFramedTransport;

/**
 * Calls one service's instances with Apache Thrift generated client code: smooth weighted round
 * robin, the protocol and transport each instance registered, a connect timeout and a deadline
 * for the whole call, and failover to the next instance when a connection cannot be made
 * (nothing was sent, so any call may go elsewhere). Each call has its own connection.
 *
 *   $catalog = new Soa\Client($registry, 'catalog', Shop\Catalog\CatalogServiceClient::class);
 *   $pong = $catalog->call(fn ($c) => $c->ping());
 *
 * Options: connect_timeout_ms (default 500), timeout_ms (default 5000), on_connect_error (a
 * callable(Instance, Throwable) that hears of each failover), eject_for_ms (how long an instance
 * that refused is passed over by this Client while others remain; default 2000, 0 disables).
 */
final class Client
{
    private Balancer $balancer;
    private ?Instance $last = null;
    private int $connectTimeout;
    private int $timeout;
    /** @var callable|null */
    private $onConnectError;
    private int $ejectFor;
    /** @var array<string, float> address => passed over until (microtime) */
    private array $ejected = [];

    /**
     * @param Registry|Instance[] $source where instances come from: a Registry, or a fixed list
     * @param class-string $clientClass the generated client, e.g. CatalogServiceClient::class
     */
    public function __construct(
        private Registry|array $source,
        private string $service,
        private string $clientClass,
        array $options = [],
        ?Balancer $balancer = null,
    ) {
        $this->connectTimeout = (int) ($options['connect_timeout_ms'] ?? 500);
        $this->timeout = (int) ($options['timeout_ms'] ?? 5000);
        $this->onConnectError = $options['on_connect_error'] ?? null;
        $this->ejectFor = (int) ($options['eject_for_ms'] ?? 2000);
        $this->balancer = $balancer ?? new Balancer();
    }

    /** The instance that served the most recent call; null before the first. */
    public function lastInstance(): ?Instance
    {
        return $this->last;
    }

    /**
     * Runs $fn with a generated client connected to the next instance and returns its result.
     * A refused connection goes to the next instance until each has been tried; $fn runs at
     * most once and its exceptions (Thrift's or the IDL's) pass through.
     *
     * @throws NoInstanceAvailable|DiscoveryError
     */
    public function call(callable $fn): mixed
    {
        $set = is_array($this->source) ? $this->source : $this->source->instances($this->service);
        $tried = [];
        $last = null;
        while (($instance = $this->pick($set, $tried)) !== null) {
            $host = str_contains($instance->host, ':') ? "[{$instance->host}]" : $instance->host;
            $socket = new DeadlineSocket($host, $instance->port);
            $socket->setSendTimeout($this->connectTimeout); // TSocket connects within it
            try {
                $socket->open();
            } catch (TException $e) {
                if ($this->ejectFor > 0) {
                    $this->ejected[$instance->address()] = microtime(true) + $this->ejectFor / 1000;
                }
                if ($this->onConnectError !== null) {
                    ($this->onConnectError)($instance, $e);
                }
                $tried[$instance->address()] = true;
                $last = $e;
                continue;
            }
            unset($this->ejected[$instance->address()]);
            $this->last = $instance;
            try {
                $socket->setDeadline($this->timeout);
                $transport = $instance->transport === 'framed'
                    ? new TFramedTransport($socket) : new TBufferedTransport($socket, 8192, 8192);
                $protocol = $instance->protocol === 'compact'
                    ? new TCompactProtocol($transport) : new TBinaryProtocol($transport);
                return $fn(new ($this->clientClass)($protocol));
            } finally {
                $socket->close();
            }
        }
        $message = $tried
            ? "soa: no instance of {$this->service} reachable (tried " . implode(', ', array_keys($tried))
                . '): ' . $last?->getMessage()
            : "soa: no instance of {$this->service} available";
        throw new NoInstanceAvailable($message, array_keys($tried), $last);
    }

    /** The next instance not tried, passing over ejected ones unless only they are left. */
    private function pick(array $set, array $tried): ?Instance
    {
        $now = microtime(true);
        $this->ejected = array_filter($this->ejected, fn (float $until) => $until > $now);
        return $this->balancer->pick($set, $tried + $this->ejected) ?? $this->balancer->pick($set, $tried);
    }
}
