// The drop chain both segment responders share (responder_guard), and the gate their answers pass
// on the way out (reply_gate): each drop reason in order and counted, and answers to neighbours
// that do not resolve never crowd out an answer that can leave. Time and the kernel's neighbour
// table are simulated: nothing here depends on the machine's speed.

#include "lanrelay/segment/reply_gate.hpp"
#include "lanrelay/segment/responder_guard.hpp"

#include <gtest/gtest.h>

#include <map>

namespace lanrelay {
namespace {

namespace ip = boost::asio::ip;
using namespace std::chrono_literals;
using verdict = responder_guard::verdict;

const auto t0 = std::chrono::steady_clock::time_point{} + 1h;

network_interface lan() {
  network_interface i;
  i.name = "eth0";
  i.index = 2;
  i.ipv4.push_back({ip::make_network_v4("10.77.0.1/16"), ip::make_address_v4("10.77.255.255")});
  return i;
}

ip::udp::endpoint at(const char* address, unsigned short port = 40000) {
  return {ip::make_address(address), port};
}

TEST(responder_guard, drops_each_reason_in_order_and_counts_it) {
  segment_drop_counters counters;
  responder_guard guard({.cookie = 7, .rate_limit = 1, .new_source_rate = 1}, counters);
  const auto eth0 = lan();
  EXPECT_EQ(guard.admit(std::nullopt, at("10.77.0.9"), &eth0, t0), verdict::malformed);
  // Our own cookie is dropped before anything is looked at (even from nowhere).
  EXPECT_EQ(guard.admit(7, at("10.77.0.9"), nullptr, t0), verdict::own_packet);
  EXPECT_EQ(guard.admit(8, at("10.77.0.9"), nullptr, t0), verdict::off_link);
  EXPECT_EQ(guard.admit(8, at("10.77.0.9", 0), &eth0, t0), verdict::bad_source);
  EXPECT_EQ(guard.admit(8, at("10.77.255.255"), &eth0, t0), verdict::bad_source);
  EXPECT_EQ(guard.admit(8, at("10.77.0.0"), &eth0, t0), verdict::bad_source);
  EXPECT_EQ(guard.admit(8, at("192.168.1.9"), &eth0, t0), verdict::off_link);
  EXPECT_EQ(guard.admit(8, at("10.77.0.9"), &eth0, t0), verdict::admitted);
  EXPECT_EQ(guard.admit(8, at("10.77.0.9"), &eth0, t0), verdict::admitted);  // burst: 2 s
  EXPECT_EQ(guard.admit(8, at("10.77.0.9"), &eth0, t0), verdict::source_over_rate);
  // 10.77.0.9 took the one newcomer token of this second.
  EXPECT_EQ(guard.admit(8, at("10.77.0.10"), &eth0, t0), verdict::newcomers_over_rate);

  EXPECT_EQ(counters.malformed, 1u);
  EXPECT_EQ(counters.own_packets, 1u);
  EXPECT_EQ(counters.off_link, 2u);
  EXPECT_EQ(counters.bad_source, 3u);
  EXPECT_EQ(counters.rate_limited, 1u);
  EXPECT_EQ(counters.new_source_limited, 1u);
  EXPECT_EQ(counters.dropped_on_receipt(), 9u);

  boost::json::object o;
  add_to_json(o, counters);
  EXPECT_EQ(o.at("bad_source").as_uint64(), 3u);
  EXPECT_EQ(o.at("unresolved_neighbour").as_uint64(), 0u);
  EXPECT_EQ(drop_samples(counters).size(), 8u);
}

// A simulated neighbour table: what the kernel would say, and how often it was asked.
struct fake_neighbours {
  std::map<std::string, neighbour_state> states;
  int asked = 0;
  reply_gate::lookup_function function() {
    return [this](const ip::address& a, unsigned) {
      ++asked;
      const auto it = states.find(a.to_string());
      return it == states.end() ? neighbour_state::none : it->second;
    };
  }
};

TEST(reply_gate, a_resolved_neighbour_is_always_answered_and_asked_about_once_a_second) {
  segment_drop_counters counters;
  fake_neighbours kernel;
  kernel.states["10.77.0.9"] = neighbour_state::resolved;
  reply_gate gate(counters, kernel.function());
  std::size_t queued = 1'000'000;  // a send queue crowded far beyond its share
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(gate.check(ip::make_address("10.77.0.9"), 2, 300, queued, 212'992, t0),
              reply_gate::verdict::send);
  }
  EXPECT_EQ(kernel.asked, 1);
  EXPECT_EQ(gate.check(ip::make_address("10.77.0.9"), 2, 300, queued, 212'992, t0 + 1s),
            reply_gate::verdict::send);
  EXPECT_EQ(kernel.asked, 2);
  EXPECT_EQ(queued, 1'000'000u);  // answers that leave at once are not charged to the queue
}

TEST(reply_gate, an_invented_address_holds_at_most_one_answer_in_the_kernel) {
  segment_drop_counters counters;
  fake_neighbours kernel;
  reply_gate gate(counters, kernel.function());
  const auto invented = ip::make_address("10.77.200.1");
  std::size_t queued = 0;
  // No entry yet: the first answer goes (and makes the kernel resolve the address).
  EXPECT_EQ(gate.check(invented, 2, 300, queued, 212'992, t0), reply_gate::verdict::send);
  // The same source again in the same batch, before the kernel has the entry: not again.
  EXPECT_EQ(gate.check(invented, 2, 300, queued, 212'992, t0),
            reply_gate::verdict::unresolved_neighbour);
  kernel.states["10.77.200.1"] = neighbour_state::resolving;
  for (int i = 1; i < 50; ++i) {
    EXPECT_EQ(gate.check(invented, 2, 300, queued, 212'992, t0 + i * 50ms),
              reply_gate::verdict::unresolved_neighbour);
  }
  // Resolution failed: one more answer, then quiet for failed_quiet.
  kernel.states["10.77.200.1"] = neighbour_state::failed;
  const auto failed_at = t0 + 4s;
  EXPECT_EQ(gate.check(invented, 2, 300, queued, 212'992, failed_at), reply_gate::verdict::send);
  EXPECT_EQ(gate.check(invented, 2, 300, queued, 212'992, failed_at + 5s),
            reply_gate::verdict::unresolved_neighbour);
  EXPECT_EQ(gate.check(invented, 2, 300, queued, 212'992, failed_at + reply_gate::failed_quiet),
            reply_gate::verdict::send);
  EXPECT_EQ(counters.unresolved_neighbour, 51u);
  EXPECT_EQ(queued, 3u * (300 + reply_gate::overhead));
}

TEST(reply_gate, answers_that_will_wait_keep_to_half_the_send_buffer) {
  segment_drop_counters counters;
  fake_neighbours kernel;
  kernel.states["10.77.0.9"] = neighbour_state::resolved;
  reply_gate gate(counters, kernel.function());
  constexpr std::size_t buffer = 212'992;
  std::size_t queued = 0;
  int sent = 0;
  for (int i = 0; i < 1000; ++i) {
    const auto invented = ip::make_address_v4(0x0a4d0000U + 256U + static_cast<unsigned>(i));
    sent += gate.check(invented, 2, 300, queued, buffer, t0) == reply_gate::verdict::send ? 1 : 0;
  }
  EXPECT_EQ(sent, static_cast<int>(buffer / 2 / (300 + reply_gate::overhead)));
  EXPECT_LE(queued, buffer / 2);
  EXPECT_EQ(counters.send_queue_full, static_cast<std::uint64_t>(1000 - sent));
  // The real agent, resolved, is answered all the same.
  EXPECT_EQ(gate.check(ip::make_address("10.77.0.9"), 2, 300, queued, buffer, t0),
            reply_gate::verdict::send);
  // The send queue unknown (0): nothing is held back.
  std::size_t unknown = 0;
  EXPECT_EQ(gate.check(ip::make_address("10.77.3.3"), 2, 300, unknown, 0, t0),
            reply_gate::verdict::send);
}

TEST(reply_gate, a_destination_the_kernel_keeps_no_entry_for_counts_as_resolved) {
  // Loopback: the kernel answers without an entry, so the answer never waits.
  segment_drop_counters counters;
  fake_neighbours kernel;
  reply_gate gate(counters, kernel.function());
  const auto local = ip::make_address("127.0.0.1");
  std::size_t queued = 1'000'000;  // crowded
  std::size_t room = 0;
  EXPECT_EQ(gate.check(local, 1, 300, room, 212'992, t0), reply_gate::verdict::send);
  EXPECT_EQ(gate.check(local, 1, 300, queued, 212'992, t0),
            reply_gate::verdict::unresolved_neighbour);  // the same batch
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(gate.check(local, 1, 300, queued, 212'992, t0 + 20ms + i * 1ms),
              reply_gate::verdict::send);
  }
  EXPECT_EQ(kernel.asked, 2);
}

TEST(reply_gate, the_kernel_table_answers_for_loopback) {
  // The real rtnetlink lookup: an address nobody sent to has no entry; it never throws.
  neighbour_table table;
  EXPECT_EQ(table.lookup(ip::make_address("127.0.0.77"), 0), neighbour_state::none);
  const auto state = table.lookup(ip::make_address("127.0.0.77"), 1);
  EXPECT_TRUE(state == neighbour_state::none || state == neighbour_state::resolved);
}

}  // namespace
}  // namespace lanrelay
