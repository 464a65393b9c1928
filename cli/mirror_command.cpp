#include "mirror_command.hpp"

#include "command_error.hpp"
#include "relay_admin.hpp"
#include "lanrelay/base/redact.hpp"
#include "lanrelay/relay/mirror_service.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/chrono.h>
#include <fmt/core.h>

#include <chrono>
#include <ctime>
#include <memory>
#include <string>

namespace lanrelay::cli {
namespace {

namespace json = boost::json;

struct mirror_options {
  std::string relay;
  std::string source;
  bool json_output = false;
  unsigned timeout_s = 3600;
  std::string token_file;
  std::string site_key;  // pins the relay's HTTPS through its signed catalog
  std::string https_port = "4128";
};

std::string when(const json::value& unix_seconds) {
  if (!unix_seconds.is_int64()) {
    return "never";
  }
  const std::time_t t = static_cast<std::time_t>(unix_seconds.as_int64());
  std::tm utc{};
  ::gmtime_r(&t, &utc);
  return fmt::format("{:%Y-%m-%d %H:%M:%S} UTC", utc);
}

json::value parse_reply(const relay_reply& reply) {
  boost::system::error_code ec;
  auto v = json::parse(reply.body, ec);
  if (ec) {
    throw command_error("lanrelayd answered HTTP " + std::to_string(reply.status) + ": " + reply.body);
  }
  return v;
}

void run_sync(const mirror_options& o) {
  const auto relay = relay_for(o.relay, o.site_key, o.https_port, std::chrono::seconds(30));
  const std::string target = o.source.empty() ? "/-/mirror/sync" : "/-/mirror/sync/" + o.source;
  const auto reply = relay_request(relay, "POST", target, std::chrono::seconds(o.timeout_s),
                                   admin_token(o.token_file));
  if (reply.status == 404) {
    throw command_error(o.source.empty() ? "lanrelayd has no mirror configured"
                                         : "lanrelayd has no mirror source '" + o.source + "'");
  }
  if (reply.status == 401 || reply.status == 403) {
    throw command_error("lanrelayd refused the sync: " + reply.body +
                        (reply.status == 401 ? "; set LANRELAY_ADMIN_TOKEN or --token-file to "
                                               "the relay's [admin] token"
                                             : ""));
  }
  const auto v = parse_reply(reply);
  if (o.json_output) {
    fmt::print("{}\n", redact_urls(json::serialize(v)));
  } else {
    for (const auto& r : v.at("results").as_array()) {
      const auto& o2 = r.as_object();
      if (o2.at("ok").as_bool()) {
        fmt::print("{}: {} ({} files downloaded, {} kept, {} bytes, {} requests)\n",
                   std::string(o2.at("source").as_string()),
                   o2.at("not_modified").as_bool() ? "upstream unchanged"
                   : o2.at("changed").as_bool()    ? "updated"
                                                   : "up to date",
                   o2.at("files_downloaded").to_number<std::uint64_t>(),
                   o2.at("files_kept").to_number<std::uint64_t>(),
                   o2.at("bytes_downloaded").to_number<std::uint64_t>(),
                   o2.at("requests").to_number<std::uint64_t>());
      } else {
        fmt::print("{}: FAILED: {}\n", std::string(o2.at("source").as_string()),
                   std::string(o2.at("error").as_string()));
      }
    }
  }
  if (reply.status != 200) {
    throw CLI::RuntimeError(1);
  }
}

void run_status(const mirror_options& o) {
  const auto relay = relay_for(o.relay, o.site_key, o.https_port, std::chrono::seconds(30));
  const auto reply = relay_request(relay, "GET", "/-/mirror", std::chrono::seconds(30));
  const auto v = parse_reply(reply);
  if (o.json_output) {
    fmt::print("{}\n", redact_urls(json::serialize(v)));  // a relay of an older version
    return;
  }
  const auto& sources = v.as_array();
  if (sources.empty()) {
    fmt::print("no mirror sources configured ([[mirror.source]] in the configuration)\n");
    return;
  }
  for (const auto& s : sources) {
    const auto& o2 = s.as_object();
    fmt::print("{}  <- {}\n", std::string(o2.at("name").as_string()),
               redact_urls(o2.at("upstream").as_string()));
    fmt::print("  last attempt:  {}{}\n", when(o2.at("last_attempt")),
               o2.at("syncing").as_bool() ? " (syncing now)" : "");
    fmt::print("  last success:  {}\n", when(o2.at("last_success")));
    fmt::print("  last change:   {} (snapshot {})\n", when(o2.at("last_change")),
               o2.at("generation").to_number<std::uint64_t>());
    fmt::print("  next sync:     {}\n", when(o2.at("next_sync")));
    fmt::print("  files served:  {} ({} bytes)\n", o2.at("files").to_number<std::uint64_t>(),
               o2.at("bytes").to_number<std::uint64_t>());
    for (const auto& c : o2.at("versions").as_array()) {
      fmt::print("  {:<14} {}\n", std::string(c.at("component").as_string()) + ":",
                 std::string(c.at("version").as_string()));
    }
    if (const auto rate = relay::rate_from_json(o2.if_contains("rate"))) {
      fmt::print("  rate limit:    {}\n", rate_text(*rate));
    }
    if (const auto* route = o2.if_contains("route"); route && !route->as_string().empty()) {
      fmt::print("  route:         {}\n", redact_urls(route->as_string()));
    }
    const auto error = redact_urls(o2.at("last_error").as_string());
    fmt::print("  error:         {}\n", error.empty() ? "none" : error);
    if (const auto* blocked = o2.if_contains("blocked"); blocked && !blocked->as_string().empty()) {
      fmt::print("  blocked:       {}\n", std::string(blocked->as_string()));
    }
  }
}

}  // namespace

void add_mirror_commands(CLI::App& app) {
  auto* mirror = app.add_subcommand("mirror", "ActiveUpdate mirrors of the local relay");
  mirror->require_subcommand(1);
  auto options = std::make_shared<mirror_options>();

  auto* sync = mirror->add_subcommand("sync", "Sync now (\"update now\") and wait for the result");
  sync->add_option("source", options->source, "The source to sync (default: every source)");
  sync->add_option("--relay", options->relay, "lanrelayd to ask, HOST[:PORT] (default 127.0.0.1:4127)");
  sync->add_option("--timeout", options->timeout_s, "Give up waiting after this many seconds")
      ->default_val(3600);
  sync->add_flag("--json", options->json_output, "Print the results as JSON");
  sync->add_option("--token-file", options->token_file,
                   "File whose first line is the relay's [admin] token (or set "
                   "LANRELAY_ADMIN_TOKEN)");
  sync->callback([options] { run_guarded([&] { run_sync(*options); }); });

  auto* status = mirror->add_subcommand("status", "Last attempt, last success, versions and errors per source");
  status->add_option("--relay", options->relay, "lanrelayd to ask, HOST[:PORT] (default 127.0.0.1:4127)");
  status->add_flag("--json", options->json_output, "Print the status as JSON");
  status->callback([options] { run_guarded([&] { run_status(*options); }); });
  for (auto* command : {sync, status}) {
    command->add_option("--site-key", options->site_key,
                        "The relay's site public key (lanrelay-ed25519:... or a file): talk "
                        "HTTPS pinned through its signed catalog (or set LANRELAY_SITE_KEY); "
                        "needed for admin calls to another host");
    command->add_option("--https-port", options->https_port,
                        "The relay's HTTPS port (default 4128)");
  }
}

}  // namespace lanrelay::cli
