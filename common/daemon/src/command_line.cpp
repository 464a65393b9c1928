#include "lanrelay/daemon/command_line.hpp"

#include "lanrelay/base/log.hpp"

#include <iostream>

namespace lanrelay::runtime {

void add_standard_options(CLI::App& app, standard_options& options, std::string_view config_help,
                          std::string_view state_dir_help) {
  app.add_option("--config", options.config_file, std::string(config_help));
  app.add_flag("--print-default-config", options.print_default,
               "Print every setting with its default and exit");
  app.add_option("--check-config", options.check_file, "Validate a configuration file and exit");
  app.add_option_function<std::string>(
      "--state-dir",
      [&options](const std::string& dir) { options.state_dir = std::filesystem::absolute(dir); },
      std::string(state_dir_help));
  app.add_option("--log-level", options.log_level,
                 "trace, debug, info, warn, error, critical or off");
}

std::optional<int> run_config_actions(const standard_options& options,
                                      const config_actions& actions) {
  if (options.print_default) {
    std::cout << actions.default_text();
    return 0;
  }
  if (options.check_file) {
    if (!report_diagnostics(actions.check(*options.check_file))) {
      return 1;
    }
    std::cout << "configuration OK\n";
    return 0;
  }
  return std::nullopt;
}

bool report_diagnostics(const std::vector<config_diagnostic>& diagnostics) {
  for (const auto& diagnostic : diagnostics) {
    std::cerr << diagnostic.to_string() << '\n';
  }
  return diagnostics.empty();
}

bool start_logging(std::string_view program, const std::string& level) {
  if (!init_logging(level)) {
    std::cerr << program << ": unknown log level \"" << level
              << "\" (trace, debug, info, warn, error, critical, off)\n";
    return false;
  }
  return true;
}

}  // namespace lanrelay::runtime
