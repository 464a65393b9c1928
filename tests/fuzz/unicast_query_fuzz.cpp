// libFuzzer target for the unicast query path (issue 14): responder_core::process_packet
// (relay/src/discovery_responder.cpp) with senders one router away, as lanrelayd sees agents
// that found it by DNS-SD or an address plan. Seeds: tests/fuzz/corpus/discovery/ (the same
// datagrams as the broadcast path).
//
// The first input byte chooses the sender (on-link, routed inside discovery.unicast_networks,
// routed outside them) and the address the query was sent to; the rest is the datagram.
// Properties: a sender outside the networks is never answered; an answer is never larger than
// the query, decodes as an offer for the query's transaction, and to a routed sender names the
// address the query arrived on.

#include "lanrelay/relay/discovery_responder.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <span>

namespace {

namespace ip = boost::asio::ip;
namespace discovery = lanrelay::discovery;

void require(bool condition) {
  if (!condition) {
    __builtin_trap();
  }
}

struct fixture {
  fixture() {
    char pattern[] = "/tmp/lanrelay-unicast-fuzz.XXXXXX";
    require(::mkdtemp(pattern) != nullptr);
    dir = pattern;
    store = lanrelay::content_store::open({.dir = dir / "cache"}).value();
    std::ofstream(dir / "item") << "pattern bytes";
    require(store->add_file(dir / "item", lanrelay::item_key{lanrelay::item_kind::pattern, "icrc",
                                                             "1667900"})
                .has_value());
    lan.name = "eth0";
    lan.index = 2;
    lan.ipv4.push_back({ip::make_network_v4("10.77.0.1/16"), ip::make_address_v4("10.77.255.255")});
    lan.ipv4.push_back({ip::make_network_v4("10.70.0.1/16"), ip::make_address_v4("10.70.255.255")});
  }
  // Runs when the fuzzer exits (exit() after -max_total_time or -runs): no directory left behind.
  ~fixture() {
    store.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  fixture(const fixture&) = delete;
  fixture& operator=(const fixture&) = delete;
  std::filesystem::path dir;
  std::unique_ptr<lanrelay::content_store> store;
  lanrelay::network_interface lan;
  lanrelay::relay::responder_counters counters;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static fixture f;
  if (size < 1) {
    return 0;
  }
  const std::uint8_t choice = data[0];
  const auto datagram = std::as_bytes(std::span(data + 1, size - 1));
  // A new core per input: the rate limiter must not make outcomes depend on earlier inputs.
  lanrelay::relay::responder_core core(
      {.cookie = 7, .role = discovery::responder_role::relay, .http_port = 4127,
       .rate_limit = 20, .unicast_networks = lanrelay::network_list::parse({"10.78.0.0/16"}).value()},
      *f.store, [] { return std::uint16_t{10}; }, f.counters);

  static const ip::udp::endpoint senders[] = {
      {ip::make_address("10.77.3.4"), 40000},  // on-link
      {ip::make_address("10.78.5.6"), 40000},  // routed, in the unicast networks
      {ip::make_address("10.79.5.6"), 40000},  // routed, outside them
      {ip::make_address("10.78.0.0"), 0},      // routed, port 0
  };
  static const ip::address arrived[] = {ip::make_address("10.77.0.1"),
                                        ip::make_address("10.70.0.1"),
                                        ip::make_address("10.77.255.255"), ip::address()};
  const auto& sender = senders[choice % 4];
  const auto& at = arrived[(choice / 4) % 4];
  const auto reply = core.process_packet(datagram, sender, &f.lan, at, {});
  if (!reply) {
    return 0;
  }
  require(sender.address() != ip::make_address("10.79.5.6") && sender.port() != 0);
  require(reply->size() <= datagram.size());
  const auto query = discovery::decode_query(datagram);
  const auto offer = discovery::decode_offer(*reply);
  require(query.has_value() && offer.has_value());
  require(offer->transaction_id == query->transaction_id);
  const auto source = lanrelay::relay::responder_core::reply_source(sender, &f.lan, at);
  if (!source.is_unspecified()) {
    require(offer->url.starts_with("http://" + source.to_string() + ":4127/"));
  }
  return 0;
}
