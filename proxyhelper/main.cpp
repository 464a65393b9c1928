// proxyhelperd: parses arguments, loads the configuration, builds the io_context and runs the
// daemon. Everything else is in lanrelay::proxyhelper.

#include "lanrelay/base/log.hpp"
#include "lanrelay/proxyhelper/config.hpp"
#include "lanrelay/proxyhelper/daemon.hpp"

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>

int main(int argc, char** argv) {
  CLI::App app{"proxyhelperd: tells the agents of its LAN segment which proxy to use, with "
               "signed answers to their queries and a PAC/WPAD script"};
  std::optional<std::string> config_file;
  std::optional<std::string> check_file;
  std::optional<std::string> state_dir;
  std::optional<std::uint16_t> http_port;
  std::optional<std::uint16_t> query_port;
  std::optional<std::uint16_t> https_port;
  std::optional<std::string> log_level;
  bool print_default = false;
  app.add_option("--config", config_file, "Configuration file (TOML)");
  app.add_flag("--print-default-config", print_default,
               "Print every setting with its default and exit");
  app.add_option("--check-config", check_file, "Validate a configuration file and exit");
  app.add_option("--state-dir", state_dir, "Directory for the key and state (overrides state.dir)");
  app.add_option("--http-port", http_port, "TCP port for PAC/WPAD, 0 for any (overrides http.port)");
  app.add_option("--https-port", https_port,
                 "TCP port for HTTPS monitoring, 0 for any (overrides https.port)");
  app.add_option("--query-port", query_port, "UDP port for queries (overrides query.port)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical or off");
  CLI11_PARSE(app, argc, argv);

  if (print_default) {
    std::cout << lanrelay::proxyhelper::default_config_text();
    return 0;
  }
  if (check_file) {
    const auto loaded = lanrelay::proxyhelper::load_config(*check_file);
    for (const auto& diagnostic : loaded.diagnostics) {
      std::cerr << diagnostic.to_string() << '\n';
    }
    if (!loaded.ok()) {
      return 1;
    }
    std::cout << "configuration OK\n";
    return 0;
  }
  if (!config_file) {
    std::cerr << "proxyhelperd: --config is required: the proxies to advertise are configured "
                 "there (see --print-default-config)\n";
    return 1;
  }
  // The file with the command line's overrides; read again on SIGHUP.
  auto load = [file = *config_file, state_dir, http_port, https_port, query_port, log_level] {
    auto loaded = lanrelay::proxyhelper::load_config(file);
    if (state_dir) {
      loaded.config.state_dir = std::filesystem::absolute(*state_dir);
    }
    if (http_port) {
      loaded.config.http_port = *http_port;
    }
    if (https_port) {
      loaded.config.https.port = *https_port;
    }
    if (query_port) {
      loaded.config.query_port = *query_port;
    }
    if (log_level) {
      loaded.config.log_level = *log_level;
    }
    return loaded;
  };
  auto loaded = load();
  for (const auto& diagnostic : loaded.diagnostics) {
    std::cerr << diagnostic.to_string() << '\n';
  }
  if (!loaded.ok()) {
    return 1;
  }
  auto config = std::move(loaded.config);
  if (!lanrelay::init_logging(config.log_level)) {
    std::cerr << "proxyhelperd: unknown log level \"" << config.log_level
              << "\" (trace, debug, info, warn, error, critical, off)\n";
    return 1;
  }

  boost::asio::io_context ioc{1};
  auto daemon = lanrelay::proxyhelper::daemon::create(ioc, std::move(config), std::move(load));
  if (!daemon || !(*daemon)->start()) {
    return 1;
  }
  ioc.run();
  return 0;
}
