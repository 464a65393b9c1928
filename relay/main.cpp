// lanrelayd: parses arguments, loads the configuration, builds the io_context and runs the
// daemon. Everything else is in lanrelay::relay and the shared runtime (lanrelay::daemon).

#include "lanrelay/base/log.hpp"
#include "lanrelay/daemon/command_line.hpp"
#include "lanrelay/daemon/runtime.hpp"
#include "lanrelay/relay/config.hpp"
#include "lanrelay/relay/daemon.hpp"
#include "lanrelay/serving/io_pool.hpp"

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

int main(int argc, char** argv) {
  namespace runtime = lanrelay::runtime;
  CLI::App app{"lanrelayd: caches installers and pattern files and serves them to the agents of "
               "its LAN segment"};
  runtime::standard_options options;
  std::optional<std::string> listen;
  std::optional<std::uint16_t> port;
  std::optional<std::uint16_t> https_port;
  runtime::add_standard_options(app, options,
                                "Configuration file (TOML); built-in defaults without it",
                                "Directory for the cache and state (overrides state.dir)");
  app.add_option("--listen", listen, "Address to listen on (overrides http.listen)");
  app.add_option("--port", port, "TCP port, 0 for any free one (overrides http.port)");
  app.add_option("--https-port", https_port,
                 "HTTPS port, 0 for any free one (overrides https.port)");
  CLI11_PARSE(app, argc, argv);

  if (const auto done = runtime::run_config_actions(
          options, {.default_text = lanrelay::default_relay_config_text,
                    .check = [](const std::filesystem::path& file) {
                      return lanrelay::load_relay_config(file).diagnostics;
                    }})) {
    return *done;
  }

  // The configuration at start-up and at every reload (SIGHUP): the file, then the overrides.
  lanrelay::relay::config_source load_config = [=]() {
    lanrelay::config_load_result loaded;
    if (options.config_file) {
      loaded = lanrelay::load_relay_config(*options.config_file);
    } else if (!options.state_dir) {
      loaded = lanrelay::default_relay_config();
    }
    if (options.state_dir) {
      loaded.config.state_dir = *options.state_dir;
    }
    if (listen) {
      loaded.config.http.listen_address = *listen;
    }
    if (port) {
      loaded.config.http.port = *port;
    }
    if (https_port) {
      loaded.config.https.port = *https_port;
    }
    if (options.log_level) {
      loaded.config.log_level = *options.log_level;
    }
    return loaded;
  };

  auto loaded = load_config();
  if (!runtime::report_diagnostics(loaded.diagnostics)) {
    return 1;
  }
  lanrelay::relay_config config = std::move(loaded.config);
  if (!config.upstream_proxy.keytab.empty()) {
    // Kerberos (proxy auth = "negotiate") reads it; set before any thread starts.
    ::setenv("KRB5_CLIENT_KTNAME", config.upstream_proxy.keytab.c_str(), 1);
  }
  if (!runtime::start_logging("lanrelayd", config.log_level)) {
    return 1;
  }

  const unsigned threads = lanrelay::relay::worker_threads(config);
  boost::asio::io_context ioc{static_cast<int>(threads)};
  // The content server's connections run on loops of their own, one thread each (like nginx's
  // workers); the io_context runs everything else (accepting, discovery, mirrors, control).
  lanrelay::io_pool connections(threads);
  auto daemon = lanrelay::relay::daemon::create(
      ioc, std::move(config),
      options.config_file ? std::move(load_config) : lanrelay::relay::config_source{},
      &connections);
  if (!daemon) {
    return 1;
  }
  (*daemon)->start();
  runtime::run_io_context(ioc, threads);
  connections.stop();  // before the daemon, which what is left on them may refer to, goes
  return (*daemon)->exit_code();
}
