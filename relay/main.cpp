// lanrelayd: parses arguments, loads the configuration, builds the io_context and runs the
// daemon. Everything else is in lanrelay::relay.

#include "lanrelay/base/log.hpp"
#include "lanrelay/relay/config.hpp"
#include "lanrelay/relay/daemon.hpp"

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

int main(int argc, char** argv) {
  CLI::App app{"lanrelayd: caches installers and pattern files and serves them to the agents of "
               "its LAN segment"};
  std::optional<std::string> config_file;
  std::optional<std::string> check_file;
  std::optional<std::string> state_dir;
  std::optional<std::string> listen;
  std::optional<std::uint16_t> port;
  std::optional<std::uint16_t> https_port;
  std::optional<std::string> log_level;
  bool print_default = false;
  app.add_option("--config", config_file, "Configuration file (TOML); built-in defaults without it");
  app.add_flag("--print-default-config", print_default,
               "Print every setting with its default and exit");
  app.add_option("--check-config", check_file, "Validate a configuration file and exit");
  app.add_option("--state-dir", state_dir, "Directory for the cache and state (overrides state.dir)");
  app.add_option("--listen", listen, "Address to listen on (overrides http.listen)");
  app.add_option("--port", port, "TCP port, 0 for any free one (overrides http.port)");
  app.add_option("--https-port", https_port,
                 "HTTPS port, 0 for any free one (overrides https.port)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical or off");
  CLI11_PARSE(app, argc, argv);

  if (print_default) {
    std::cout << lanrelay::default_relay_config_text();
    return 0;
  }
  if (check_file) {
    const auto loaded = lanrelay::load_relay_config(*check_file);
    for (const auto& diagnostic : loaded.diagnostics) {
      std::cerr << diagnostic.to_string() << '\n';
    }
    if (!loaded.ok()) {
      return 1;
    }
    std::cout << "configuration OK\n";
    return 0;
  }

  if (state_dir) {
    *state_dir = std::filesystem::absolute(*state_dir).string();
  }
  // The configuration at start-up and at every reload (SIGHUP): the file, then the overrides.
  lanrelay::relay::config_source load_config = [=]() {
    lanrelay::config_load_result loaded;
    if (config_file) {
      loaded = lanrelay::load_relay_config(*config_file);
    } else {
      loaded.config = lanrelay::default_relay_config();
    }
    if (state_dir) {
      loaded.config.state_dir = *state_dir;
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
    if (log_level) {
      loaded.config.log_level = *log_level;
    }
    return loaded;
  };

  auto loaded = load_config();
  for (const auto& diagnostic : loaded.diagnostics) {
    std::cerr << diagnostic.to_string() << '\n';
  }
  if (!loaded.ok()) {
    return 1;
  }
  lanrelay::relay_config config = std::move(loaded.config);
  if (!lanrelay::init_logging(config.log_level)) {
    std::cerr << "lanrelayd: unknown log level \"" << config.log_level
              << "\" (trace, debug, info, warn, error, critical, off)\n";
    return 1;
  }

  const unsigned threads = lanrelay::relay::worker_threads(config);
  boost::asio::io_context ioc{static_cast<int>(threads)};
  auto daemon = lanrelay::relay::daemon::create(
      ioc, std::move(config),
      config_file ? std::move(load_config) : lanrelay::relay::config_source{});
  if (!daemon) {
    return 1;
  }
  (*daemon)->start();
  lanrelay::relay::run_io_context(ioc, threads);
  return (*daemon)->exit_code();
}
