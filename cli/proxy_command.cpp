#include "proxy_command.hpp"
#include "command_error.hpp"

#include "lanrelay/base/log.hpp"
#include "lanrelay/base/redact.hpp"
#include "lanrelay/proxy_resolution/address_watch.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <fmt/core.h>
#include "lanrelay/base/duration_option.hpp"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <memory>

namespace lanrelay::cli {
namespace {

namespace net = boost::asio;
namespace json = boost::json;

std::chrono::milliseconds duration_option(const std::string& name, std::string_view text) {
  const auto parsed = parse_duration(text);
  if (!parsed) {
    throw command_error(name + " '" + std::string(text) + "' is not " +
                        std::string(duration_grammar_hint));
  }
  return *parsed;
}

json::object to_json(const proxy_resolution::resolution& r, const std::string& target) {
  json::array skipped;
  for (const auto& s : r.skipped) {
    skipped.push_back(json::object{{"step", proxy_resolution::to_string(s.step)},
                                   {"route", s.route},
                                   {"reason", s.reason}});
  }
  json::array refused;
  for (const auto& text : r.refused_answers) {
    refused.push_back(json::string(text));
  }
  json::object out{{"target", redact_urls(target)},
                   {"working", r.working},
                   {"decided_by", proxy_resolution::to_string(r.decided_by)},
                   {"proxy", r.proxy ? json::value(redact_urls(*r.proxy)) : json::value(nullptr)},
                   {"auth", r.proxy ? json::value(to_string(r.auth)) : json::value(nullptr)},
                   {"asked_segment", r.asked_segment},
                   {"answered_by", r.answered_by},
                   {"answers", r.answers},
                   {"refused_answers", refused},
                   {"skipped", skipped},
                   {"from_cache", r.from_cache},
                   {"elapsed_ms", r.elapsed.count()}};
  return out;
}

void print(const proxy_resolution::resolution& r, const std::string& target, bool as_json) {
  if (as_json) {
    fmt::print("{}\n", json::serialize(to_json(r, target)));
  } else {
    if (!r.working) {
      fmt::print("no proxy found: {} is not reachable directly, through the system's settings or "
                 "through an advertised proxy\n",
                 redact_urls(target));
    } else if (r.proxy) {
      fmt::print("{} via proxy {} (decided by {}{}{})\n", redact_urls(target), redact_urls(*r.proxy),
                 proxy_resolution::to_string(r.decided_by),
                 r.answered_by.empty() ? "" : ", answered by " + r.answered_by,
                 r.from_cache ? ", cached" : "");
    } else {
      fmt::print("{} directly (decided by {}{})\n", redact_urls(target), proxy_resolution::to_string(r.decided_by),
                 r.from_cache ? ", cached" : "");
    }
    for (const auto& s : r.skipped) {
      fmt::print("  skipped {} [{}]: {}\n", s.route, proxy_resolution::to_string(s.step), s.reason);
    }
    for (const auto& text : r.refused_answers) {
      fmt::print("  refused answer {}\n", text);
    }
  }
  std::fflush(stdout);
}

}  // namespace

void proxy_cli_options::add_to(CLI::App& cmd) {
  cmd.add_option("--proxy-key", pinned_keys,
                 "Pinned proxyhelperd public key (lanrelay-ed25519:...); answers signed with "
                 "another key, unsigned, replayed or expired are ignored. Repeat for several");
  cmd.add_flag("--accept-unsigned", accept_unsigned,
               "Also accept unsigned or unpinned answers: any machine on the segment could then "
               "choose the proxy (logged)");
  cmd.add_option("--pac-url", pac_url, "The machine's PAC script, evaluated in step 1");
  cmd.add_option("--credentials-env", credentials_env,
                 "Name of an environment variable holding user:password for the proxy named by "
                 "--credentials-proxy");
  cmd.add_option("--credentials-proxy", credentials_proxy,
                 "host:port of the only proxy the --credentials-env credentials are sent to "
                 "(required with it); a proxy named by a PAC script or the segment gets them "
                 "only if it is this one");
  cmd.add_option("--proxy-auth", auth,
                 "How to log in to the --credentials-proxy proxy when proxyhelperd's answer "
                 "names no scheme for it: basic, digest, ntlm (with the --credentials-env "
                 "user:password) or negotiate (Kerberos from the credential cache or "
                 "KRB5_CLIENT_KTNAME's keytab; --credentials-proxy alone)")
      ->capture_default_str();
  cmd.add_option("--proxy-ca-file", proxy_ca_file,
                 "CA certificates (PEM) an https:// proxy's certificate must chain to, instead of "
                 "the system store (--ca-file is for the upstream server, not the proxy)")
      ->check(CLI::ExistingFile);
  cmd.add_flag("--no-segment", no_segment, "Do not ask the segment's proxyhelperd (step 2)");
  cmd.add_option("--proxy-window", window, "How long to wait for proxyhelperd's answer")
      ->check(duration_validator())
      ->capture_default_str();
  cmd.add_option("--proxy-port", port, "proxyhelperd's UDP port")->capture_default_str();
  cmd.add_option("--proxy-target", targets,
                 "Ask these proxyhelperd addresses by unicast instead of broadcasting");
  cmd.add_option("--check-timeout", timeout, "Deadline of each connectivity check step")
      ->check(duration_validator())
      ->capture_default_str();
}

proxy_resolution::proxy_resolver_options proxy_cli_options::resolver_options() const {
  proxy_resolution::proxy_resolver_options o;
  o.system = proxy_resolution::system_proxy_settings::from_environment();
  if (!pac_url.empty()) {
    const auto url = boost::urls::parse_absolute_uri(pac_url);
    if (!url || (url->scheme_id() != boost::urls::scheme::http &&
                 url->scheme_id() != boost::urls::scheme::https)) {
      throw command_error("--pac-url '" + pac_url + "' is not an http:// or https:// URL");
    }
    o.system.pac_url = pac_url;
  }
  o.ask_segment = !no_segment;
  o.query.port = port;
  o.query.window = duration_option("--proxy-window", window);
  for (const auto& t : targets) {
    boost::system::error_code ec;
    o.query.targets.push_back(net::ip::make_address(t, ec));
    if (ec) {
      throw command_error("--proxy-target '" + t + "' is not an IP address");
    }
  }
  for (const auto& text : pinned_keys) {
    auto key = parse_public_key(text);
    if (!key) {
      throw command_error("--proxy-key '" + text + "': " + key.error().message());
    }
    o.query.trust.pinned.push_back(*key);
  }
  o.query.trust.accept_unsigned = accept_unsigned;
  if (o.ask_segment && o.query.trust.pinned.empty() && !accept_unsigned) {
    spdlog::info("event=no_proxy_key hint=\"no proxyhelperd key pinned (--proxy-key): answers "
                 "from the segment will be ignored\"");
  }
  if (!credentials_env.empty()) {
    const char* value = std::getenv(credentials_env.c_str());
    if (value == nullptr || std::string_view(value).find(':') == std::string_view::npos) {
      throw command_error("--credentials-env " + credentials_env +
                          ": the variable is not set to user:password");
    }
    if (credentials_proxy.empty()) {
      throw command_error("--credentials-env needs --credentials-proxy host:port: the "
                          "credentials are sent to that proxy only");
    }
    std::string why;
    auto bound = proxy_resolution::proxy_credentials::bind(value, credentials_proxy, &why);
    if (!bound) {
      throw command_error("--credentials-proxy: " + why);
    }
    o.credentials = std::move(*bound);
    const auto scheme = parse_proxy_auth_scheme(auth);
    if (!scheme) {
      throw command_error("--proxy-auth '" + auth + "' is not basic, digest, ntlm or negotiate");
    }
    o.credentials->auth = *scheme;
  } else if (!credentials_proxy.empty()) {
    // Negotiate needs no user and password: --credentials-proxy alone names the proxy it is for.
    if (parse_proxy_auth_scheme(auth) != proxy_auth_scheme::negotiate) {
      throw command_error("--credentials-proxy needs --credentials-env (the credentials to "
                          "send), unless --proxy-auth is negotiate");
    }
    std::string why;
    auto bound = proxy_resolution::proxy_credentials::bind("", credentials_proxy, &why);
    if (!bound) {
      throw command_error("--credentials-proxy: " + why);
    }
    o.credentials = std::move(*bound);
    o.credentials->auth = proxy_auth_scheme::negotiate;
  }
  o.check_timeout = duration_option("--check-timeout", timeout);
  if (ca_file) {
    o.tls.ca_file = *ca_file;
  }
  if (proxy_ca_file) {
    o.proxy_ca_file = *proxy_ca_file;
  }
  return o;
}

agent::fetch_options::upstream_route_fn proxy_cli_options::upstream_route(
    const tls_options& tls) const {
  auto options = resolver_options();
  options.tls = tls;
  const auto credentials = options.credentials;
  const auto proxy_ca = options.proxy_ca_file;
  // Built on the first call, on the executor the downloads run on.
  auto resolver = std::make_shared<std::optional<proxy_resolution::proxy_resolver>>();
  return [resolver, options = std::move(options), credentials,
          proxy_ca](const boost::urls::url& upstream)
             -> net::awaitable<std::optional<proxy_settings>> {
    if (!*resolver) {
      auto executor = co_await net::this_coro::executor;
      resolver->emplace(executor, options);
    }
    const auto route = co_await (*resolver)->resolve(upstream);
    for (const auto& s : route.skipped) {
      spdlog::info("event=proxy_route_skipped url={} step={} route={} reason=\"{}\"",
                   redact_urls(upstream.buffer()), proxy_resolution::to_string(s.step),
                   redact_urls(s.route), s.reason);
    }
    spdlog::info("event=upstream_route url={} decided_by={} proxy={} auth={}", upstream.buffer(),
                 proxy_resolution::to_string(route.decided_by), route.proxy.value_or("direct"),
                 route.proxy ? to_string(route.auth) : "none");
    co_return route.settings(credentials, proxy_ca);
  };
}

void add_proxy_commands(CLI::App& app) {
  struct resolve_args {
    proxy_cli_options proxy;
    std::string url = "https://www.example.com/";
    bool json = false;
    unsigned follow = 0;
  };
  auto args = std::make_shared<resolve_args>();
  auto* group = app.add_subcommand("proxy", "How this machine reaches the internet");
  group->require_subcommand(1);
  auto* resolve = group->add_subcommand(
      "resolve",
      "Find the route to URL: the system's proxy settings, else the proxy that the segment's "
      "proxyhelperd advertises; prints which step decided and why other routes were skipped");
  resolve->add_option("url", args->url, "The target to reach")->capture_default_str();
  resolve->add_flag("--json", args->json, "Print one JSON object per resolution");
  args->proxy.add_to(*resolve);
  resolve->add_option("--ca-file", args->proxy.ca_file, "CA certificates for https:// targets");
  resolve->add_option("--follow", args->follow,
                      "Keep running: resolve again (from the cache), then after each of the next "
                      "N changes of this machine's IP addresses, resolve anew");
  resolve->callback([args] {
    run_guarded([&] {
      const auto url = boost::urls::parse_absolute_uri(args->url);
      if (!url || (url->scheme_id() != boost::urls::scheme::http &&
                   url->scheme_id() != boost::urls::scheme::https)) {
        throw command_error("'" + args->url + "' is not an http:// or https:// URL");
      }
      const boost::urls::url target(*url);
      net::io_context ioc;
      proxy_resolution::proxy_resolver resolver(ioc.get_executor(), args->proxy.resolver_options());
      bool working = false;
      std::exception_ptr failure;
      net::co_spawn(
          ioc,
          [&]() -> net::awaitable<void> {
            // Opened before the first resolution, so no change after it goes unnoticed.
            std::optional<proxy_resolution::address_watch> watch;
            if (args->follow > 0) {
              watch.emplace(co_await net::this_coro::executor);
              if (!watch->ok()) {
                throw command_error("cannot watch address changes: " +
                                    watch->open_error().message());
              }
            }
            auto first = co_await resolver.resolve(target);
            working = first.working;
            print(first, args->url, args->json);
            if (args->follow == 0) {
              co_return;
            }
            print(co_await resolver.resolve(target), args->url, args->json);
            for (unsigned round = 0; round < args->follow; ++round) {
              auto changes = co_await watch->wait();
              if (!changes) {
                co_return;
              }
              resolver.forget();
              auto again = co_await resolver.resolve(target);
              working = again.working;
              print(again, args->url, args->json);
            }
          },
          [&](std::exception_ptr e) { failure = e; });
      ioc.run();
      if (failure) {
        std::rethrow_exception(failure);
      }
      if (!working) {
        throw CLI::RuntimeError(2);
      }
    });
  });
}

}  // namespace lanrelay::cli
