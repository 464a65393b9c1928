// The daemon runtime (common/daemon/runtime.hpp) with a fake daemon: signals reach the right
// hook, a reload goes through the daemon's reload function, a second signal aborts, and a stop
// that never finishes is cut at the backstop. Signals are raised in this process; every wait is
// on an event (the io_context running out of work or being stopped), not on a clock.

#include "lanrelay/daemon/runtime.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include <csignal>
#include <functional>
#include <string>
#include <vector>

namespace lanrelay::runtime {
namespace {

namespace net = boost::asio;

TEST(daemon_runtime, sigterm_stops_through_the_daemon_hook_and_the_io_context_runs_out) {
  net::io_context ioc;
  std::vector<std::string> calls;
  runtime r(ioc, daemon_hooks{
                     .program = "test",
                     .stop = [&](std::function<void(bool)> stopped) {
                       calls.push_back("stop");
                       stopped(true);
                     },
                     .abort = [&] { calls.push_back("abort"); },
                 });
  r.start("ready");
  net::post(ioc, [] { std::raise(SIGTERM); });
  ioc.run();  // returns once the signal sets are cancelled and nothing else runs
  EXPECT_EQ(calls, (std::vector<std::string>{"stop"}));
  EXPECT_TRUE(r.stopping());
}

TEST(daemon_runtime, sighup_reloads_then_sigterm_stops) {
  net::io_context ioc;
  std::vector<std::string> calls;
  runtime* self = nullptr;
  runtime r(ioc, daemon_hooks{
                     .program = "test",
                     .before_reload = [&] { calls.push_back("tls"); },
                     .reload = [&] {
                       calls.push_back("reload");
                       reload_result result;
                       result.plan.applied = {"log.level"};
                       result.plan.need_restart = {"http.port"};
                       net::post(ioc, [] { std::raise(SIGTERM); });
                       return result;
                     },
                     .status = [] { return std::string("fine"); },
                     .stop = [&](std::function<void(bool)> stopped) {
                       calls.push_back(self->stopping() ? "stop" : "stop?");
                       stopped(true);
                     },
                 });
  self = &r;
  r.start("ready");
  net::post(ioc, [] { std::raise(SIGHUP); });
  ioc.run();
  EXPECT_EQ(calls, (std::vector<std::string>{"tls", "reload", "stop"}));
}

TEST(daemon_runtime, a_refused_file_keeps_running_and_a_missing_reload_reads_nothing) {
  net::io_context ioc;
  int reloads = 0;
  runtime r(ioc, daemon_hooks{
                     .program = "test",
                     .reload = [&] {
                       ++reloads;
                       reload_result result;
                       result.diagnostics.push_back({"f.toml", 2, 3, "bad"});
                       return result;
                     },
                     .stop = [](std::function<void(bool)> stopped) { stopped(true); },
                 });
  r.start("ready");
  r.reload();  // logs the diagnostics; nothing else happens
  EXPECT_EQ(reloads, 1);
  EXPECT_FALSE(r.stopping());

  runtime without(ioc, daemon_hooks{.program = "test",
                                    .stop = [](std::function<void(bool)> stopped) {
                                      stopped(true);
                                    }});
  without.reload();  // no --config: only before_reload (none here) runs
  SUCCEED();
}

TEST(daemon_runtime, a_second_signal_aborts_and_a_stop_that_never_ends_is_cut_at_the_backstop) {
  net::io_context ioc;
  std::vector<std::string> calls;
  runtime r(ioc, daemon_hooks{
                     .program = "test",
                     .grace = std::chrono::milliseconds(0),
                     .stop = [&](std::function<void(bool)>) {
                       calls.push_back("stop");  // never calls `stopped`
                       std::raise(SIGINT);
                     },
                     .abort = [&] { calls.push_back("abort"); },
                 });
  r.start("ready");
  net::post(ioc, [] { std::raise(SIGTERM); });
  ioc.run();  // only the backstop can end this: it stops the io_context
  ASSERT_GE(calls.size(), 2u);
  EXPECT_EQ(calls[0], "stop");
  EXPECT_EQ(calls[1], "abort");  // the second signal
  EXPECT_EQ(calls.back(), "abort");  // and the backstop's
  EXPECT_TRUE(r.stopping());
}

TEST(daemon_runtime, names_are_joined_for_log_lines) {
  EXPECT_EQ(join_names({}), "none");
  EXPECT_EQ(join_names({"a.b", "c"}), "a.b,c");
}

}  // namespace
}  // namespace lanrelay::runtime
