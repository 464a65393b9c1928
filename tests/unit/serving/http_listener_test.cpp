// http_listener: the one HTTP listener of both daemons. Loopback, port 0; every wait is on an
// event (a callback, a read's completion), bounded only by a generous safety limit.

#include "lanrelay/serving/http_listener.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <string>
#include <vector>

namespace lanrelay {
namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

constexpr auto safety_limit = 30s;  // only a hung test ever reaches it

// Runs `ioc` until `done` holds or the safety limit passes.
template <class Predicate>
bool run_until(net::io_context& ioc, Predicate done) {
  const auto limit = std::chrono::steady_clock::now() + safety_limit;
  while (!done() && std::chrono::steady_clock::now() < limit) {
    ioc.run_one_for(100ms);
  }
  return done();
}

http_listener_settings loopback(std::uint32_t max_connections) {
  http_listener_settings s;
  s.address = "127.0.0.1";
  s.port = 0;
  s.max_connections = max_connections;
  return s;
}

// The connection limit counts open sessions; one over it is closed at once and reported, and a
// place that frees up admits the next connection.
TEST(http_listener, refuses_connections_over_the_limit_and_admits_again_when_one_ends) {
  net::io_context ioc;
  auto listener = http_listener::open(ioc, loopback(1), nullptr);
  ASSERT_TRUE(listener);
  std::atomic<int> accepted{0};
  std::atomic<int> refused{0};
  // Each session waits for its client's first request head, then ends.
  (*listener)->start(
      [&](std::shared_ptr<http_connection> c) -> net::awaitable<void> {
        return [](std::shared_ptr<http_connection> connection) -> net::awaitable<void> {
          boost::beast::flat_buffer buffer;
          http::request_parser<http::empty_body> parser;
          co_await connection->read_request_head(buffer, parser);
        }(std::move(c));
      },
      http_listener_events{[&] { ++accepted; }, [&] { ++refused; }, {}});
  const auto endpoint = (*listener)->local_endpoint();

  tcp::socket first(ioc);
  first.connect(endpoint);
  ASSERT_TRUE(run_until(ioc, [&] { return accepted == 1; }));
  EXPECT_EQ((*listener)->open_connections(), 1U);

  tcp::socket second(ioc);
  second.connect(endpoint);
  ASSERT_TRUE(run_until(ioc, [&] { return refused == 1; }));
  char byte = 0;
  bool second_closed = false;
  second.async_read_some(net::buffer(&byte, 1), [&](boost::system::error_code ec, std::size_t) {
    second_closed = ec == net::error::eof || ec == net::error::connection_reset;
  });
  ASSERT_TRUE(run_until(ioc, [&] { return second_closed; }));

  const std::string head = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  net::write(first, net::buffer(head));
  ASSERT_TRUE(run_until(ioc, [&] { return (*listener)->open_connections() == 0; }));

  tcp::socket third(ioc);
  third.connect(endpoint);
  ASSERT_TRUE(run_until(ioc, [&] { return accepted == 2; }));
  EXPECT_EQ(refused, 1);
  (*listener)->stop();
  third.close();
  ioc.run_for(100ms);
}

// Between keep-alive requests the connection waits idle_timeout for the next request's first
// byte; its end is reported as idle_ended, not as a slow head.
TEST(http_listener, a_keep_alive_connection_ends_idle_without_a_next_request) {
  net::io_context ioc;
  auto settings = loopback(4);
  settings.idle_timeout = 200ms;
  auto listener = http_listener::open(ioc, settings, nullptr);
  ASSERT_TRUE(listener);
  std::vector<http_connection::head_result> heads;
  bool session_over = false;
  (*listener)->start([&](std::shared_ptr<http_connection> c) -> net::awaitable<void> {
    return [](std::shared_ptr<http_connection> connection, std::vector<http_connection::head_result>& out,
              bool& over) -> net::awaitable<void> {
      boost::beast::flat_buffer buffer;
      for (;;) {
        http::request_parser<http::empty_body> parser;
        const auto head = co_await connection->read_request_head(buffer, parser);
        out.push_back(head);
        if (head.ec) {
          break;
        }
      }
      over = true;
    }(std::move(c), heads, session_over);
  });
  tcp::socket client(ioc);
  client.connect((*listener)->local_endpoint());
  const std::string head = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  net::write(client, net::buffer(head));
  ASSERT_TRUE(run_until(ioc, [&] { return session_over; }));
  ASSERT_EQ(heads.size(), 2U);
  EXPECT_FALSE(heads[0].ec);
  EXPECT_FALSE(heads[0].idle_ended);
  EXPECT_TRUE(heads[1].ec);
  EXPECT_TRUE(heads[1].idle_ended);
  (*listener)->stop();
  ioc.run_for(100ms);
}

// With an io_pool, each connection runs on one of the pool's loops, in turn, and stays on that
// loop's one thread from accept to its end (no hop to the listener's io_context or to another
// loop between a wait and what follows it).
TEST(http_listener, connections_run_on_the_pools_loops_each_on_one_thread) {
  net::io_context ioc;
  io_pool pool(2);
  auto listener = http_listener::open(ioc, loopback(4), nullptr, &pool);
  ASSERT_TRUE(listener);
  std::mutex mutex;
  std::vector<std::pair<std::thread::id, std::thread::id>> seen;  // at start, after the read
  std::atomic<int> done{0};
  (*listener)->start([&](std::shared_ptr<http_connection> c) -> net::awaitable<void> {
    return [](std::shared_ptr<http_connection> connection, std::mutex& m,
              std::vector<std::pair<std::thread::id, std::thread::id>>& out,
              std::atomic<int>& finished) -> net::awaitable<void> {
      const auto at_start = std::this_thread::get_id();
      boost::beast::flat_buffer buffer;
      http::request_parser<http::empty_body> parser;
      co_await connection->read_request_head(buffer, parser);
      {
        std::lock_guard lock(m);
        out.emplace_back(at_start, std::this_thread::get_id());
      }
      ++finished;
    }(std::move(c), mutex, seen, done);
  });
  tcp::socket first(ioc);
  tcp::socket second(ioc);
  first.connect((*listener)->local_endpoint());
  second.connect((*listener)->local_endpoint());
  const std::string head = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  net::write(first, net::buffer(head));
  net::write(second, net::buffer(head));
  ASSERT_TRUE(run_until(ioc, [&] { return done == 2; }));
  (*listener)->stop();
  ioc.run_for(100ms);
  pool.stop();
  ASSERT_EQ(seen.size(), 2U);
  for (const auto& [at_start, after_read] : seen) {
    EXPECT_NE(at_start, std::this_thread::get_id());  // not the listener's io_context
    EXPECT_EQ(at_start, after_read);
  }
  EXPECT_NE(seen[0].first, seen[1].first);  // one loop each, in turn
}

TEST(http_listener, a_taken_port_is_an_error) {
  net::io_context ioc;
  auto first = http_listener::open(ioc, loopback(1), nullptr);
  ASSERT_TRUE(first);
  auto settings = loopback(1);
  settings.port = (*first)->local_endpoint().port();
  EXPECT_FALSE(http_listener::open(ioc, settings, nullptr));
}

}  // namespace
}  // namespace lanrelay
