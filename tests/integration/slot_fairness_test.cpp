// The real lanrelayd shares its transfer slots fairly (issue 10, "one client takes every slot"):
// a client that holds its share (peers.max_peers_per_client) without reading gets 503 for more,
// while another client address is still served; a client that reads slower than
// peers.min_client_rate over peers.client_rate_window is reset and its slot goes to the next one.
// Clients are told apart by source address: loopback owns 127.0.0.0/8, so each raw_connection
// binds an address of its own. Every wait has a deadline used as a hang guard only.

#include "relayd_harness.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace lanrelay::test {
namespace {

constexpr std::size_t big_size = 32 << 20;  // far more than loopback socket buffers hold
constexpr std::string_view big_target = "/cache/installer/agent/14.0.1";

std::unique_ptr<raw_connection> stalled_download(std::uint16_t port, const char* source) {
  auto c = std::make_unique<raw_connection>(port, 4096, source);
  EXPECT_TRUE(c->connected()) << source;
  EXPECT_TRUE(c->send_all("GET " + std::string(big_target) + " HTTP/1.1\r\nHost: x\r\n\r\n"));
  const auto head = c->read_head();
  EXPECT_TRUE(head) << source;
  EXPECT_NE(head.value_or("").find("200 OK"), std::string::npos) << head.value_or("no head");
  return c;
}

raw_connection::response ranged_get(std::uint16_t port, const char* source) {
  raw_connection c(port, 0, source);
  EXPECT_TRUE(c.connected()) << source;
  EXPECT_TRUE(c.send_all("GET " + std::string(big_target) +
                         " HTTP/1.1\r\nHost: x\r\nRange: bytes=0-99\r\n\r\n"));
  return c.read_response();
}

TEST(slot_fairness, a_client_holding_its_share_gets_503_while_another_client_is_served) {
  relayd relay;  // defaults: max_peers 10, max_peers_per_client 2
  const std::string big = random_bytes(big_size, 11);
  relay.add({item_kind::installer, "agent", "14.0.1"}, big);

  auto first = stalled_download(relay.port(), "127.0.0.2");
  auto second = stalled_download(relay.port(), "127.0.0.2");
  ASSERT_TRUE(eventually(10s, [&] { return relay.stat("active_transfers") == 2; }));

  const auto refused = ranged_get(relay.port(), "127.0.0.2");
  ASSERT_TRUE(refused.complete);
  EXPECT_EQ(refused.message.result(), http::status::service_unavailable);
  EXPECT_EQ(refused.message[http::field::retry_after], "5");
  EXPECT_NE(refused.message.body().find("its share"), std::string::npos)
      << refused.message.body();

  // Eight slots are still free for everybody else.
  const auto other = ranged_get(relay.port(), "127.0.0.3");
  ASSERT_TRUE(other.complete);
  EXPECT_EQ(other.message.result(), http::status::partial_content);
  EXPECT_EQ(other.message.body(), big.substr(0, 100));

  auto stats = relay.stats();
  EXPECT_EQ(stats.at("refused_client_share").to_number<int>(), 1);
  EXPECT_EQ(stats.at("refused_busy").to_number<int>(), 0);

  // The holder's share frees as soon as one of its downloads ends.
  first.reset();
  ASSERT_TRUE(eventually(10s, [&] { return relay.stat("active_transfers") == 1; }));
  const auto again = ranged_get(relay.port(), "127.0.0.2");
  ASSERT_TRUE(again.complete);
  EXPECT_EQ(again.message.result(), http::status::partial_content);
}

TEST(slot_fairness, a_client_reading_below_the_rate_floor_loses_its_slot) {
  // One slot, so that the stalled reader blocks everybody until the floor cuts it.
  relayd relay("[peers]\nmax_peers = 1\nmin_client_rate = \"64KiB\"\n"
               "client_rate_window = \"1s\"\n");
  const std::string big = random_bytes(big_size, 12);
  relay.add({item_kind::installer, "agent", "14.0.1"}, big);

  auto stalled = stalled_download(relay.port(), "127.0.0.4");
  ASSERT_TRUE(eventually(10s, [&] { return relay.stat("active_transfers") == 1; }));
  EXPECT_EQ(ranged_get(relay.port(), "127.0.0.5").message.result(),
            http::status::service_unavailable);

  // The first window passes on what the socket buffers took; a later one sees nothing read.
  ASSERT_TRUE(eventually(30s, [&] { return relay.stat("slow_clients_reset") == 1; }))
      << relay.log();
  ASSERT_TRUE(eventually(10s, [&] { return relay.stat("active_transfers") == 0; }));
  EXPECT_NE(relay.log().find("event=slow_client_reset peer=127.0.0.4"), std::string::npos);
  // Reset, not ended as if complete: the client sees the connection break before the body ends.
  std::string body = std::move(stalled->pending());
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (stalled->read_some(body, deadline, 1 << 20) == raw_connection::read_status::data) {
  }
  EXPECT_LT(body.size(), big_size);

  // The freed slot serves the next client, and a client that keeps up gets every byte.
  const auto next = ranged_get(relay.port(), "127.0.0.5");
  ASSERT_TRUE(next.complete);
  EXPECT_EQ(next.message.result(), http::status::partial_content);
  // The client can have the last byte before the server has let the slot go.
  ASSERT_TRUE(eventually(10s, [&] { return relay.stat("active_transfers") == 0; }));
  raw_connection reader(relay.port(), 0, "127.0.0.6");
  ASSERT_TRUE(reader.send_all("GET " + std::string(big_target) + " HTTP/1.1\r\nHost: x\r\n\r\n"));
  const auto whole = reader.read_response(60s);
  ASSERT_TRUE(whole.complete);
  EXPECT_EQ(whole.message.result(), http::status::ok);
  EXPECT_TRUE(whole.message.body() == big);
  EXPECT_EQ(relay.stat("slow_clients_reset"), 1U);
}

}  // namespace
}  // namespace lanrelay::test
