#include "lanrelay/agent/pac_script.hpp"

#include "lanrelay/common/interfaces.hpp"

#include <duktape.h>

#include <netdb.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include <cctype>

namespace lanrelay::agent {
namespace {

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class pac_error_category final : public boost::system::error_category {
 public:
  constexpr pac_error_category() noexcept : error_category(0x6c6e72792d706163ULL) {}
  const char* name() const noexcept override { return "lanrelay.pac"; }
  std::string message(int value) const override {
    switch (static_cast<pac_errc>(value)) {
      case pac_errc::too_large:
        return "the PAC script is larger than 1 MiB";
      case pac_errc::script_error:
        return "the PAC script has an error (it does not compile, or throws)";
      case pac_errc::missing_function:
        return "the PAC script defines no FindProxyForURL function";
      case pac_errc::bad_result:
        return "FindProxyForURL did not return a string";
      case pac_errc::out_of_memory:
        return "cannot create a JavaScript heap for the PAC script";
      case pac_errc::timeout:
        return "the PAC script ran longer than its time limit";
    }
    return "unknown PAC error " + std::to_string(value);
  }
};
#pragma GCC diagnostic pop

// The standard PAC helpers that need no access to the machine, in JavaScript. dnsResolve and
// myIpAddress are native (below).
constexpr std::string_view helpers = R"JS(
function isPlainHostName(host) { return String(host).indexOf('.') < 0; }
function dnsDomainIs(host, domain) {
  host = String(host); domain = String(domain);
  return host.length >= domain.length &&
         host.substring(host.length - domain.length) == domain;
}
function localHostOrDomainIs(host, hostdom) {
  return host == hostdom || String(hostdom).lastIndexOf(host + '.', 0) == 0;
}
function __lanrelay_ipv4(text) {
  var parts = String(text).split('.');
  if (parts.length != 4) return null;
  var n = 0;
  for (var i = 0; i < 4; i++) {
    if (!/^[0-9]{1,3}$/.test(parts[i])) return null;
    var v = parseInt(parts[i], 10);
    if (v > 255) return null;
    n = n * 256 + v;
  }
  return n;
}
function isResolvable(host) { return dnsResolve(host) !== null; }
function isInNet(host, pattern, mask) {
  var address = __lanrelay_ipv4(host) !== null ? host : dnsResolve(host);
  if (address === null) return false;
  var a = __lanrelay_ipv4(address), p = __lanrelay_ipv4(pattern), m = __lanrelay_ipv4(mask);
  if (a === null || p === null || m === null) return false;
  return ((a & m) >>> 0) == ((p & m) >>> 0);
}
function dnsDomainLevels(host) { return String(host).split('.').length - 1; }
function shExpMatch(text, pattern) {
  var re = String(pattern).replace(/[.+^${}()|[\]\\]/g, '\\$&')
                          .replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp('^' + re + '$').test(String(text));
}
function __lanrelay_now(args) {
  var gmt = args.length > 0 && args[args.length - 1] === 'GMT';
  var d = new Date();
  return { gmt: gmt, day: gmt ? d.getUTCDay() : d.getDay(), date: gmt ? d.getUTCDate() : d.getDate(),
           month: gmt ? d.getUTCMonth() : d.getMonth(), year: gmt ? d.getUTCFullYear() : d.getFullYear(),
           hour: gmt ? d.getUTCHours() : d.getHours(), minute: gmt ? d.getUTCMinutes() : d.getMinutes(),
           second: gmt ? d.getUTCSeconds() : d.getSeconds() };
}
function __lanrelay_in(value, low, high) {
  return low <= high ? (value >= low && value <= high) : (value >= low || value <= high);
}
function weekdayRange() {
  var days = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];
  var now = __lanrelay_now(arguments);
  var n = arguments.length - (now.gmt ? 1 : 0);
  var d1 = days.indexOf(arguments[0]);
  var d2 = n > 1 ? days.indexOf(arguments[1]) : d1;
  if (d1 < 0 || d2 < 0) return false;
  return __lanrelay_in(now.day, d1, d2);
}
function dateRange() {
  var months = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
  var now = __lanrelay_now(arguments);
  var n = arguments.length - (now.gmt ? 1 : 0);
  var args = Array.prototype.slice.call(arguments, 0, n);
  if (n == 0 || n > 2) return false;
  var value = function (a) {
    if (typeof a === 'string') return { kind: 'month', v: months.indexOf(a) };
    if (a > 31) return { kind: 'year', v: a };
    return { kind: 'date', v: a };
  };
  var lo = value(args[0]), hi = n == 2 ? value(args[1]) : lo;
  if (lo.kind != hi.kind || lo.v < 0 || hi.v < 0) return false;
  var current = lo.kind == 'month' ? now.month : lo.kind == 'year' ? now.year : now.date;
  return lo.kind == 'year' ? (current >= lo.v && current <= hi.v) : __lanrelay_in(current, lo.v, hi.v);
}
function timeRange() {
  var now = __lanrelay_now(arguments);
  var n = arguments.length - (now.gmt ? 1 : 0);
  var a = arguments;
  var t = now.hour * 3600 + now.minute * 60 + now.second;
  if (n == 1) return now.hour == a[0];
  if (n == 2) return __lanrelay_in(t, a[0] * 3600, a[1] * 3600 - 1);
  if (n == 4) return __lanrelay_in(t, a[0] * 3600 + a[1] * 60, a[2] * 3600 + a[3] * 60 - 1);
  if (n == 6) return __lanrelay_in(t, a[0] * 3600 + a[1] * 60 + a[2], a[3] * 3600 + a[4] * 60 + a[5]);
  return false;
}
)JS";

constexpr const char* environment_key = "\xff" "lanrelay_pac_environment";

pac_environment* environment_of(duk_context* ctx) {
  duk_push_heap_stash(ctx);
  duk_get_prop_string(ctx, -1, environment_key);
  auto* env = static_cast<pac_environment*>(duk_get_pointer(ctx, -1));
  duk_pop_2(ctx);
  return env;
}

duk_ret_t native_dns_resolve(duk_context* ctx) {
  const std::string host = duk_safe_to_string(ctx, 0);
  auto* env = environment_of(ctx);
  const auto address = env != nullptr && env->resolve ? env->resolve(host) : std::nullopt;
  if (address) {
    duk_push_lstring(ctx, address->data(), address->size());
  } else {
    duk_push_null(ctx);
  }
  return 1;
}

duk_ret_t native_my_ip_address(duk_context* ctx) {
  auto* env = environment_of(ctx);
  const std::string address = env != nullptr && env->my_ip_address ? env->my_ip_address()
                                                                    : std::string("127.0.0.1");
  duk_push_lstring(ctx, address.data(), address.size());
  return 1;
}

std::string error_text(duk_context* ctx) {
  return duk_safe_to_string(ctx, -1);
}

}  // namespace

const boost::system::error_category& pac_category() noexcept {
  static const pac_error_category category;
  return category;
}

pac_environment system_pac_environment() {
  pac_environment env;
  env.resolve = [](std::string_view host) -> std::optional<std::string> {
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (::getaddrinfo(std::string(host).c_str(), nullptr, &hints, &found) != 0 || found == nullptr) {
      return std::nullopt;
    }
    char text[INET_ADDRSTRLEN] = {};
    const auto* in = reinterpret_cast<const sockaddr_in*>(found->ai_addr);
    ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    ::freeaddrinfo(found);
    return std::string(text);
  };
  env.my_ip_address = [] {
    for (const auto& nic : list_interfaces()) {
      if (!nic.loopback && !nic.ipv4.empty()) {
        return nic.ipv4.front().network.address().to_string();
      }
    }
    return std::string("127.0.0.1");
  };
  return env;
}

}  // namespace lanrelay::agent

// Duktape's time check (DUK_USE_EXEC_TIMEOUT_CHECK, see agent/CMakeLists.txt), called every few
// thousand bytecode instructions with the heap's udata: true ends the running call with a
// RangeError, and keeps ending it until the call has unwound.
extern "C" int lanrelay_duk_exec_timeout_check(void* udata) {
  const auto* deadline = static_cast<const lanrelay::agent::pac_deadline*>(udata);
  return deadline != nullptr && deadline->passed() ? 1 : 0;
}

namespace lanrelay::agent {

struct pac_script::impl {
  struct heap_deleter {
    void operator()(duk_context* ctx) const noexcept { duk_destroy_heap(ctx); }
  };
  // The heap's udata points here, so it is declared (and destroyed) after the heap.
  std::unique_ptr<pac_deadline> deadline = std::make_unique<pac_deadline>();
  std::unique_ptr<duk_context, heap_deleter> heap;
  // Owned here, pointed to from the heap stash: its address must not change, hence the box.
  std::unique_ptr<pac_environment> environment;
};

pac_script::pac_script(std::unique_ptr<impl> p) noexcept : impl_(std::move(p)) {}
pac_script::pac_script(pac_script&&) noexcept = default;
pac_script& pac_script::operator=(pac_script&&) noexcept = default;
pac_script::~pac_script() = default;

result<pac_script> pac_script::compile(std::string_view source, pac_environment environment,
                                       std::string* detail) {
  if (source.size() > kMaxPacScriptSize) {
    return pac_errc::too_large;
  }
  auto state = std::make_unique<impl>();
  state->heap.reset(duk_create_heap(nullptr, nullptr, nullptr, state->deadline.get(), nullptr));
  if (!state->heap) {
    return pac_errc::out_of_memory;
  }
  state->environment = std::make_unique<pac_environment>(std::move(environment));
  duk_context* ctx = state->heap.get();
  duk_push_heap_stash(ctx);
  duk_push_pointer(ctx, state->environment.get());
  duk_put_prop_string(ctx, -2, environment_key);
  duk_pop(ctx);
  duk_push_c_function(ctx, native_dns_resolve, 1);
  duk_put_global_string(ctx, "dnsResolve");
  duk_push_c_function(ctx, native_my_ip_address, 0);
  duk_put_global_string(ctx, "myIpAddress");

  if (duk_peval_lstring(ctx, helpers.data(), helpers.size()) != 0) {
    if (detail != nullptr) {
      *detail = "built-in PAC helpers: " + error_text(ctx);
    }
    return pac_errc::script_error;
  }
  duk_pop(ctx);
  state->deadline->start();
  const bool compiled = duk_peval_lstring(ctx, source.data(), source.size()) == 0;
  const bool timed_out = state->deadline->passed();
  state->deadline->clear();
  if (!compiled) {
    if (detail != nullptr) {
      *detail = error_text(ctx);
    }
    return timed_out ? pac_errc::timeout : pac_errc::script_error;
  }
  duk_pop(ctx);
  duk_get_global_string(ctx, "FindProxyForURL");
  const bool has_function = duk_is_function(ctx, -1);
  duk_pop(ctx);
  if (!has_function) {
    return pac_errc::missing_function;
  }
  return pac_script(std::move(state));
}

result<std::string> pac_script::find_proxy(std::string_view url, std::string_view host,
                                           std::string* detail) {
  duk_context* ctx = impl_->heap.get();
  duk_get_global_string(ctx, "FindProxyForURL");
  duk_push_lstring(ctx, url.data(), url.size());
  duk_push_lstring(ctx, host.data(), host.size());
  impl_->deadline->start();
  const bool called = duk_pcall(ctx, 2) == DUK_EXEC_SUCCESS;
  const bool timed_out = impl_->deadline->passed();
  impl_->deadline->clear();
  if (!called) {
    if (detail != nullptr) {
      *detail = error_text(ctx);
    }
    duk_pop(ctx);
    return timed_out ? pac_errc::timeout : pac_errc::script_error;
  }
  if (!duk_is_string(ctx, -1)) {
    duk_pop(ctx);
    return pac_errc::bad_result;
  }
  std::size_t length = 0;
  const char* text = duk_get_lstring(ctx, -1, &length);
  std::string out(text, length);
  duk_pop(ctx);
  return out;
}

std::vector<pac_route> parse_pac_result(std::string_view text) {
  std::vector<pac_route> routes;
  const auto trim = [](std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) {
      s.remove_prefix(1);
    }
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) {
      s.remove_suffix(1);
    }
    return s;
  };
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto end = std::min(text.find(';', start), text.size());
    const auto entry = trim(text.substr(start, end - start));
    start = end + 1;
    if (entry.empty()) {
      continue;
    }
    pac_route route;
    route.text = std::string(entry);
    const auto space = entry.find_first_of(" \t");
    std::string keyword(entry.substr(0, space));
    for (char& c : keyword) {
      c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    const auto argument = space == std::string_view::npos ? std::string_view() : trim(entry.substr(space));
    if (keyword == "DIRECT" && argument.empty()) {
      route.type = pac_route::kind::direct;
    } else if ((keyword == "PROXY" || keyword == "HTTP") && !argument.empty() &&
               argument.find_first_of(" \t/@") == std::string_view::npos) {
      route.type = pac_route::kind::proxy;
      route.proxy_url = "http://" + std::string(argument);
    } else {
      route.type = pac_route::kind::unsupported;
    }
    routes.push_back(std::move(route));
  }
  if (routes.empty()) {
    routes.push_back(pac_route{pac_route::kind::direct, "", "DIRECT"});
  }
  return routes;
}

}  // namespace lanrelay::agent
