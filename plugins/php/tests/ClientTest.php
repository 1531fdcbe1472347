<?php

use Soa\Client;
use Soa\Instance;
use Soa\NoInstanceAvailable;

/** Stands in for a generated service client. */
final class DummyServiceClient
{
    public function __construct(public $protocol)
    {
    }
}

test('client: a refused connection fails over to the next instance; fn runs once', function () {
    $server = stream_socket_server('tcp://127.0.0.1:0');
    $alivePort = (int) substr(strrchr(stream_socket_get_name($server, false), ':'), 1);
    $alive = new Instance('s', '127.0.0.1', $alivePort);
    $dead = new Instance('s', '127.0.0.1', free_port());
    $refused = [];
    $client = new Client([$dead, $alive], 's', DummyServiceClient::class, [
        'on_connect_error' => function (Instance $i) use (&$refused) {
            $refused[] = $i->port;
        },
    ]);
    for ($n = 0; $n < 4; $n++) {
        $runs = 0;
        $out = $client->call(function ($c) use (&$runs) {
            $runs++;
            check($c instanceof DummyServiceClient);
            return 'ok';
        });
        check_same('ok', $out);
        check_same(1, $runs);
        check_same($alivePort, $client->lastInstance()->port);
    }
    check_same([$dead->port], $refused, 'ejected after refusing, the dead instance is tried once:');
    check_same('alone', (new Client([$alive], 's', DummyServiceClient::class))->call(fn () => 'alone'));
    fclose($server);
});

test('client: no instance available; nothing runs', function () {
    $client = new Client([new Instance('s', '127.0.0.1', free_port())], 's', DummyServiceClient::class);
    $e = check_throws(NoInstanceAvailable::class, fn () => $client->call(fn () => throw new LogicException('ran')));
    check_same(1, count($e->tried));
    check_throws(NoInstanceAvailable::class, fn () => (new Client([], 's', DummyServiceClient::class))->call(fn () => 1));
    check_throws(NoInstanceAvailable::class, fn () => (new Client([new Instance('s', 'h', 1, 0)], 's', DummyServiceClient::class))->call(fn () => 1));
});

test('client: the deadline covers the whole call', function () {
    $server = stream_socket_server('tcp://127.0.0.1:0'); // accepts (backlog), never answers
    $port = (int) substr(strrchr(stream_socket_get_name($server, false), ':'), 1);
    $client = new Client([new Instance('s', '127.0.0.1', $port)], 's', DummyServiceClient::class, ['timeout_ms' => 200]);
    $start = microtime(true);
    check_throws(Thrift\Exception\TTransportException::class, fn () => $client->call(function ($c) {
        $c->protocol->getTransport()->write('x');
        $c->protocol->getTransport()->flush();
        $c->protocol->getTransport()->readAll(4);
    }));
    $elapsed = microtime(true) - $start;
    check($elapsed < 1.5, "took $elapsed s");
    fclose($server);
});
