// The benchmark service: the cheapest call, and a 1 KB round trip.
namespace py bench

service BenchService {
  void ping(),
  string echo(1: string text),
}
