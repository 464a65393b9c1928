// The PAC cage (pac_script.hpp): a script from the network gets a heap cap, a time limit that
// holds for scripts of few instructions that each do a lot, and a child process of its own.
// Bounds on elapsed time here are hang guards only; the assertions are on the outcome.

#include "lanrelay/proxy_resolution/pac_script.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <gtest/gtest.h>

#include <chrono>

namespace lanrelay::proxy_resolution {
namespace {

namespace net = boost::asio;
using namespace std::chrono_literals;

pac_environment no_network() {
  pac_environment env;
  env.resolve = [](std::string_view) -> std::optional<std::string> { return std::nullopt; };
  env.my_ip_address = [] { return std::string("10.77.0.4"); };
  return env;
}

// The shape of the script that reached 2.1 GB before the heap had a cap: its top level keeps
// every string it builds, each twice the last (so the cap, not the time limit, stops it: a few
// milliseconds of CPU reach 64 MiB even on a busy machine).
constexpr std::string_view hoarding_pac = R"JS(var hoard = [];
function FindProxyForURL(url, host) {
  return "PROXY proxy.corp.example:3128";
}
var s = "hoard";
while (true) {
  hoard.push(s);
  s = s + s;
}
)JS";

// Few instructions, each building a 2 MiB string: Duktape's instruction-count time check alone
// let such a loop run for minutes; the allocator's check stops it.
constexpr std::string_view concatenating_pac = R"JS(function FindProxyForURL(url, host) {
  var s = new Array(1 << 20).join("x");
  var t = "";
  for (var i = 0; i < 100000000; i++) { t = s + i + s; }
  return "DIRECT";
})JS";

pac_outcome run_in_child(std::string_view script, std::size_t* ticks = nullptr) {
  net::io_context ioc;
  pac_outcome out;
  bool done = false;
  net::co_spawn(ioc, find_proxy_in_child(std::string(script), "http://a.example/", "a.example"),
                [&](std::exception_ptr e, pac_outcome o) {
                  if (e) {
                    std::rethrow_exception(e);
                  }
                  out = std::move(o);
                  done = true;
                });
  if (ticks != nullptr) {
    net::co_spawn(
        ioc,
        [&]() -> net::awaitable<void> {
          net::steady_timer timer(co_await net::this_coro::executor);
          while (!done) {
            timer.expires_after(1ms);
            co_await timer.async_wait(net::use_awaitable);
            ++*ticks;
          }
        },
        net::detached);
  }
  ioc.run_for(60s);  // hang guard
  EXPECT_TRUE(done);
  return out;
}

TEST(pac_cage, a_hoarding_script_hits_the_heap_cap) {
  std::string detail;
  const auto compiled = pac_script::compile(hoarding_pac, no_network(), &detail);
  ASSERT_FALSE(compiled);
  EXPECT_EQ(compiled.error(), pac_errc::memory_limit) << detail;

  auto in_call = pac_script::compile(
      "var keep = []; function FindProxyForURL(u, h) { var s = h; "
      "for (;;) { keep.push(s); s = s + s; } }",
      no_network());
  ASSERT_TRUE(in_call);
  EXPECT_EQ(in_call->find_proxy("http://a/", "a", &detail).error(), pac_errc::memory_limit);
}

TEST(pac_cage, a_loop_of_big_concatenations_stops_at_the_time_limit) {
  auto script = pac_script::compile(concatenating_pac, no_network());
  ASSERT_TRUE(script);
  std::string detail;
  EXPECT_EQ(script->find_proxy("http://a/", "a", &detail).error(), pac_errc::timeout) << detail;
}

TEST(pac_cage, the_child_answers_and_reports_each_failure_by_kind) {
  const auto fine = run_in_child(
      "function FindProxyForURL(u, h) { return 'PROXY a:1; SOCKS b:2; DIRECT'; }");
  ASSERT_TRUE(fine.answer) << fine.detail;
  EXPECT_EQ(*fine.answer, "PROXY a:1; SOCKS b:2; DIRECT");

  const auto hoarding = run_in_child(hoarding_pac);
  ASSERT_FALSE(hoarding.answer);
  EXPECT_EQ(hoarding.answer.error(), pac_errc::memory_limit) << hoarding.detail;

  const auto concatenating = run_in_child(concatenating_pac);
  ASSERT_FALSE(concatenating.answer);
  EXPECT_EQ(concatenating.answer.error(), pac_errc::timeout) << concatenating.detail;

  const auto throwing = run_in_child("function FindProxyForURL(u, h) { throw new Error('boom'); }");
  ASSERT_FALSE(throwing.answer);
  EXPECT_EQ(throwing.answer.error(), pac_errc::script_error);
  EXPECT_NE(throwing.detail.find("boom"), std::string::npos) << throwing.detail;

  const auto too_large = run_in_child(std::string(max_pac_script_size + 1, ' '));
  EXPECT_EQ(too_large.answer.error(), pac_errc::too_large);
}

// A regular expression that backtracks for ages is one bytecode instruction: it ends within the
// cage all the same (the deadline, Duktape's own regexp step limit, or failing both the child's
// kill timer or CPU limit), and the caller gets an error, not a hang.
TEST(pac_cage, a_backtracking_regular_expression_ends_with_its_process) {
  const auto out = run_in_child(
      "function FindProxyForURL(u, h) { "
      "/^(a+)+$/.test('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!'); return 'DIRECT'; }");
  ASSERT_FALSE(out.answer);
  const auto error = out.answer.error();
  EXPECT_TRUE(error == pac_errc::timeout || error == pac_errc::evaluation_failed ||
              error == pac_errc::script_error)
      << error.message() << ": " << out.detail;
}

// The evaluation is awaited, not run on the I/O thread: while the child loops until its time
// limit, the same single-threaded io_context keeps running other handlers.
TEST(pac_cage, the_io_thread_keeps_running_while_the_child_evaluates) {
  std::size_t ticks = 0;
  const auto looping = run_in_child("function FindProxyForURL(u, h) { for (;;) {} }", &ticks);
  ASSERT_FALSE(looping.answer);
  EXPECT_EQ(looping.answer.error(), pac_errc::timeout) << looping.detail;
  EXPECT_GT(ticks, 0u);
}

}  // namespace
}  // namespace lanrelay::proxy_resolution
