// parent_chain's parent query against a fake parent on loopback: which answers it believes.

#include "lanrelay/relay/parent_chain.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <gtest/gtest.h>

#include <array>
#include <filesystem>
#include <functional>

namespace lanrelay::relay {
namespace {

namespace net = boost::asio;
using udp = net::ip::udp;
namespace fs = std::filesystem;

class parent_chain_test : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-parent-chain.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    store_ = std::move(content_store::open({.dir = dir_ / "cache"}).value());
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs one parent query for `q` against a fake parent that answers every query with
  // `answer(query)` (nothing when it returns nullopt), then returns what the chain remembers.
  std::optional<parent_offer> ask(
      const discovery::query& q,
      std::function<std::optional<discovery::offer>(const discovery::query&)> answer) {
    net::io_context ioc;
    udp::socket parent(ioc, udp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    parent_chain chain(ioc,
                       parent_chain::settings{.parents = {net::ip::make_address("127.0.0.1")},
                                              .port = parent.local_endpoint().port(),
                                              .cookie = 7,
                                              .query_window = std::chrono::milliseconds(300)},
                       *store_);
    net::co_spawn(
        ioc,
        [&]() -> net::awaitable<void> {
          std::array<std::byte, discovery::max_datagram> buffer;
          for (;;) {
            udp::endpoint from;
            const auto n = co_await parent.async_receive_from(net::buffer(buffer), from,
                                                              net::use_awaitable);
            auto got = discovery::decode_query(std::span(buffer.data(), n));
            if (!got) {
              continue;
            }
            if (auto o = answer(*got)) {
              o->transaction_id = got->transaction_id;
              auto bytes = discovery::encode(*o, n).value();
              co_await parent.async_send_to(net::buffer(bytes), from, net::use_awaitable);
            }
          }
        },
        net::detached);
    chain.ask(q);
    // The query ends with its window (or the first good answer); then stop the fake parent.
    const auto& counts = chain.counters();
    while (counts.offers_received.load() + counts.unanswered.load() == 0 && ioc.run_one() > 0) {
    }
    parent.close();
    ioc.run();
    return chain.find(q);
  }

  static discovery::offer offer_for(const discovery::query& q, std::string url) {
    discovery::offer o;
    o.sender_cookie = 99;
    o.kind = q.kind;
    o.name = q.name;
    o.version = "1";
    o.size = 4096;
    o.sha256 = q.sha256.value_or(sha256_digest{});
    o.url = std::move(url);
    o.free_slots = 3;
    return o;
  }

  fs::path dir_;
  std::unique_ptr<content_store> store_;
};

discovery::query wanted() {
  discovery::query q;
  q.transaction_id = 1;
  q.sender_cookie = 2;
  q.kind = item_kind::file;
  q.name = "payload";
  q.version = "1";
  sha256_digest d{};
  d[0] = std::byte{0x42};
  q.sha256 = d;
  return q;
}

TEST_F(parent_chain_test, a_parents_offer_for_its_own_url_is_remembered) {
  const auto found = ask(wanted(), [](const discovery::query& q) {
    return offer_for(q, "http://127.0.0.1:4127/cache/file/payload/1");
  });
  ASSERT_TRUE(found);
  EXPECT_EQ(found->url, "http://127.0.0.1:4127/cache/file/payload/1");
  EXPECT_EQ(found->size, 4096u);
  EXPECT_EQ(found->key.name, "payload");
}

TEST_F(parent_chain_test, an_offer_naming_another_host_is_refused) {
  // The agents' rule: a URL on another host than the sender is not believed.
  EXPECT_FALSE(ask(wanted(), [](const discovery::query& q) {
    return offer_for(q, "http://10.9.9.9:4127/cache/file/payload/1");
  }));
}

TEST_F(parent_chain_test, an_offer_of_other_bytes_or_another_item_is_refused) {
  EXPECT_FALSE(ask(wanted(), [](const discovery::query& q) {
    auto o = offer_for(q, "http://127.0.0.1:4127/cache/file/payload/1");
    o.sha256[0] = std::byte{0x43};
    return o;
  }));
  EXPECT_FALSE(ask(wanted(), [](const discovery::query& q) {
    auto o = offer_for(q, "http://127.0.0.1:4127/cache/file/other/1");
    o.name = "other";
    return o;
  }));
}

TEST_F(parent_chain_test, an_offer_carrying_our_own_cookie_is_ignored) {
  EXPECT_FALSE(ask(wanted(), [](const discovery::query& q) {
    auto o = offer_for(q, "http://127.0.0.1:4127/cache/file/payload/1");
    o.sender_cookie = 7;  // the chain's own
    return o;
  }));
}

TEST_F(parent_chain_test, a_silent_parent_is_asked_in_at_most_three_rounds) {
  std::size_t queries = 0;
  EXPECT_FALSE(ask(wanted(), [&](const discovery::query&) {
    ++queries;
    return std::optional<discovery::offer>();
  }));
  EXPECT_GE(queries, 1u);
  EXPECT_LE(queries, 3u);  // one parent query: at most three rounds
}

}  // namespace
}  // namespace lanrelay::relay
