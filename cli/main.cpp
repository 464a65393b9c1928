// lanrelay: the administrator's and agent's command line.
#include "agent_commands.hpp"
#include "cache_command.hpp"
#include "proxy_command.hpp"
#include "mirror_command.hpp"
#include "status_command.hpp"
#include "update_command.hpp"

#include "lanrelay/base/log.hpp"
#include "lanrelay/base/redact.hpp"

#include <CLI/CLI.hpp>

#include <iostream>
#include <sstream>

int main(int argc, char** argv) {
  CLI::App app{"lanrelay: manage a LAN relay and fetch items through the segment"};
  app.require_subcommand(1);
  lanrelay::init_logging("warn");
  app.add_option_function<std::string>(
         "--log-level",
         [](const std::string& level) {
           if (!lanrelay::init_logging(level)) {
             throw CLI::ValidationError("--log-level", "'" + level + "' is not a log level");
           }
         },
         "trace, debug, info, warn, error, critical or off")
      ->trigger_on_parse();

  lanrelay::cli::store_location where;
  lanrelay::cli::add_cache_commands(app, where);
  lanrelay::cli::add_agent_commands(app);
  lanrelay::cli::add_key_commands(app);
  lanrelay::cli::add_proxy_commands(app);
  lanrelay::cli::add_mirror_commands(app);
  lanrelay::cli::add_update_command(app);
  lanrelay::cli::add_status_command(app);
  // Global options such as --log-level may also follow a subcommand.
  for (auto* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    sub->fallthrough();
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // A refused argument is quoted back (and may end up in a log): without URL passwords.
    std::ostringstream out;
    std::ostringstream err;
    const int status = app.exit(e, out, err);
    std::cout << lanrelay::redact_urls(out.str());
    std::cerr << lanrelay::redact_urls(err.str());
    return status;
  }
  return 0;
}
