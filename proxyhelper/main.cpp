// proxyhelperd: parses arguments, loads the configuration, builds the io_context and runs the
// daemon. Everything else is in lanrelay::proxyhelper and the shared runtime (lanrelay::daemon).

#include "lanrelay/base/log.hpp"
#include "lanrelay/daemon/command_line.hpp"
#include "lanrelay/proxyhelper/config.hpp"
#include "lanrelay/proxyhelper/daemon.hpp"

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <iostream>
#include <optional>
#include <string>

int main(int argc, char** argv) {
  namespace runtime = lanrelay::runtime;
  CLI::App app{"proxyhelperd: tells the agents of its LAN segment which proxy to use, with "
               "signed answers to their queries and a PAC/WPAD script"};
  runtime::standard_options options;
  std::optional<std::uint16_t> http_port;
  std::optional<std::uint16_t> query_port;
  std::optional<std::uint16_t> https_port;
  runtime::add_standard_options(app, options, "Configuration file (TOML)",
                                "Directory for the key and state (overrides state.dir)");
  app.add_option("--http-port", http_port, "TCP port for PAC/WPAD, 0 for any (overrides http.port)");
  app.add_option("--https-port", https_port,
                 "TCP port for HTTPS monitoring, 0 for any (overrides https.port)");
  app.add_option("--query-port", query_port, "UDP port for queries (overrides query.port)");
  CLI11_PARSE(app, argc, argv);

  if (const auto done = runtime::run_config_actions(
          options, {.default_text = lanrelay::proxyhelper::default_config_text,
                    .check = [](const std::filesystem::path& file) {
                      return lanrelay::proxyhelper::load_config(file).diagnostics;
                    }})) {
    return *done;
  }
  if (!options.config_file) {
    std::cerr << "proxyhelperd: --config is required: the proxies to advertise are configured "
                 "there (see --print-default-config)\n";
    return 1;
  }
  // The file with the command line's overrides; read again on SIGHUP.
  auto load = [file = *options.config_file, state_dir = options.state_dir,
               log_level = options.log_level, http_port, https_port, query_port] {
    auto loaded = lanrelay::proxyhelper::load_config(file);
    if (state_dir) {
      loaded.config.state_dir = *state_dir;
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
  if (!runtime::report_diagnostics(loaded.diagnostics)) {
    return 1;
  }
  auto config = std::move(loaded.config);
  if (!runtime::start_logging("proxyhelperd", config.log_level)) {
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
