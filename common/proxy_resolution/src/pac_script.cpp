#include "lanrelay/proxy_resolution/pac_script.hpp"

#include "lanrelay/segment/interfaces.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <duktape.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace lanrelay::proxy_resolution {
namespace {

std::string pac_message(pac_errc value) {
  switch (value) {
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
    case pac_errc::memory_limit:
      return "the PAC script wanted more than its 64 MiB of memory";
    case pac_errc::evaluation_failed:
      return "the process evaluating the PAC script died (broken PAC script)";
  }
  return "unknown PAC error " + std::to_string(static_cast<int>(value));
}

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

// The heap's udata, shared by the allocator and the execution time check: one per heap.
struct heap_limits {
  pac_deadline deadline;
  std::size_t used = 0;  // bytes handed to Duktape and not yet freed
  bool refused_memory = false;  // an allocation was refused: over pac_memory_limit
  bool refused_time = false;    // an allocation was refused: past the deadline

  void start() {
    refused_memory = refused_time = false;
    deadline.start();
  }
  // Whether a new allocation of `more` bytes may be made now.
  bool admit(std::size_t more) {
    if (deadline.passed()) {
      refused_time = true;
      return false;
    }
    if (more > pac_memory_limit - used) {
      refused_memory = true;
      return false;
    }
    return true;
  }
};

// Each block carries its size in front, so that free and realloc can keep `used` exact. The
// header keeps the block aligned for any type.
constexpr std::size_t block_header = alignof(std::max_align_t);

std::size_t block_size(void* ptr) {
  std::size_t size = 0;
  std::memcpy(&size, static_cast<unsigned char*>(ptr) - block_header, sizeof size);
  return size;
}

void* limited_alloc(void* udata, duk_size_t size) {
  auto* limits = static_cast<heap_limits*>(udata);
  if (!limits->admit(size)) {
    return nullptr;  // Duktape collects garbage, retries, then throws a RangeError
  }
  auto* block = static_cast<unsigned char*>(std::malloc(size + block_header));
  if (block == nullptr) {
    return nullptr;
  }
  std::memcpy(block, &size, sizeof size);
  limits->used += size;
  return block + block_header;
}

void limited_free(void* udata, void* ptr) {
  if (ptr == nullptr) {
    return;
  }
  static_cast<heap_limits*>(udata)->used -= block_size(ptr);
  std::free(static_cast<unsigned char*>(ptr) - block_header);
}

void* limited_realloc(void* udata, void* ptr, duk_size_t size) {
  if (ptr == nullptr) {
    return limited_alloc(udata, size);
  }
  if (size == 0) {
    limited_free(udata, ptr);
    return nullptr;
  }
  auto* limits = static_cast<heap_limits*>(udata);
  const std::size_t old = block_size(ptr);
  if (size > old && !limits->admit(size - old)) {
    return nullptr;
  }
  auto* block = static_cast<unsigned char*>(
      std::realloc(static_cast<unsigned char*>(ptr) - block_header, size + block_header));
  if (block == nullptr) {
    return nullptr;
  }
  std::memcpy(block, &size, sizeof size);
  limits->used = limits->used - old + size;
  return block + block_header;
}

// Why the evaluation that just failed stopped: the cage's limits before the script's own error.
pac_errc failure_of(const heap_limits& limits) {
  if (limits.refused_time || limits.deadline.passed()) {
    return pac_errc::timeout;
  }
  if (limits.refused_memory) {
    return pac_errc::memory_limit;
  }
  return pac_errc::script_error;
}

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
  static const error_category_of<pac_errc> category(
      "lanrelay.pac", 0x6c6e72792d706163ULL, pac_message);
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

}  // namespace lanrelay::proxy_resolution

// Duktape's time check (DUK_USE_EXEC_TIMEOUT_CHECK, see agent/CMakeLists.txt), called every few
// thousand bytecode instructions with the heap's udata: true ends the running call with a
// RangeError, and keeps ending it until the call has unwound.
extern "C" int lanrelay_duk_exec_timeout_check(void* udata) {
  const auto* limits = static_cast<const lanrelay::proxy_resolution::heap_limits*>(udata);
  return limits != nullptr && limits->deadline.passed() ? 1 : 0;
}

namespace lanrelay::proxy_resolution {

struct pac_script::impl {
  struct heap_deleter {
    void operator()(duk_context* ctx) const noexcept { duk_destroy_heap(ctx); }
  };
  // The heap's udata points here, so it is declared (and destroyed) after the heap.
  std::unique_ptr<heap_limits> limits = std::make_unique<heap_limits>();
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
  if (source.size() > max_pac_script_size) {
    return pac_errc::too_large;
  }
  auto state = std::make_unique<impl>();
  state->heap.reset(duk_create_heap(limited_alloc, limited_realloc, limited_free,
                                    state->limits.get(), nullptr));
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
  state->limits->start();
  const bool compiled = duk_peval_lstring(ctx, source.data(), source.size()) == 0;
  const pac_errc failure = failure_of(*state->limits);
  state->limits->deadline.clear();
  if (!compiled) {
    if (detail != nullptr) {
      *detail = error_text(ctx);
    }
    return failure;
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
  impl_->limits->start();
  const bool called = duk_pcall(ctx, 2) == DUK_EXEC_SUCCESS;
  const pac_errc failure = failure_of(*impl_->limits);
  impl_->limits->deadline.clear();
  if (!called) {
    if (detail != nullptr) {
      *detail = error_text(ctx);
    }
    duk_pop(ctx);
    return failure;
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

namespace {

namespace net = boost::asio;
using namespace boost::asio::experimental::awaitable_operators;

// The child's answer on the pipe: u8 ok, i32 error value (pac_errc), u32 length and bytes of the
// answer, u32 length and bytes of the detail. Texts are cut at max_message_text.
constexpr std::size_t max_message_text = 64 * 1024;

void put_u32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

std::uint32_t get_u32(std::string_view in, std::size_t at) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < 4; ++i) {
    v = (v << 8) | static_cast<unsigned char>(in[at + i]);
  }
  return v;
}

std::string encode_outcome(const result<std::string>& answer, std::string_view detail) {
  std::string out;
  out.push_back(answer ? '\1' : '\0');
  put_u32(out, answer ? 0u : static_cast<std::uint32_t>(answer.error().value()));
  for (std::string_view text : {answer ? std::string_view(*answer) : std::string_view(), detail}) {
    text = text.substr(0, max_message_text);
    put_u32(out, static_cast<std::uint32_t>(text.size()));
    out.append(text);
  }
  return out;
}

// A complete message in `in`, or nothing yet.
std::optional<pac_outcome> decode_outcome(std::string_view in) {
  if (in.size() < 9) {
    return std::nullopt;
  }
  const std::uint32_t answer_size = get_u32(in, 5);
  if (answer_size > max_message_text || in.size() < 13 + answer_size) {
    return std::nullopt;
  }
  const std::uint32_t detail_size = get_u32(in, 9 + answer_size);
  if (detail_size > max_message_text || in.size() < 13 + answer_size + detail_size) {
    return std::nullopt;
  }
  pac_outcome out;
  out.detail = std::string(in.substr(13 + answer_size, detail_size));
  if (in[0] == '\1') {
    out.answer = std::string(in.substr(9, answer_size));
  } else {
    const auto value = static_cast<int>(get_u32(in, 1));
    out.answer = make_error_code(value >= static_cast<int>(pac_errc::too_large) &&
                                         value <= static_cast<int>(pac_errc::evaluation_failed)
                                     ? static_cast<pac_errc>(value)
                                     : pac_errc::evaluation_failed);
  }
  return out;
}

// The address space the process maps now, in bytes (/proc/self/statm), 0 when unknown.
std::size_t mapped_bytes() {
  const int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return 0;
  }
  char text[128] = {};
  const ::ssize_t n = ::read(fd, text, sizeof text - 1);
  ::close(fd);
  if (n <= 0) {
    return 0;
  }
  return static_cast<std::size_t>(std::strtoull(text, nullptr, 10)) *
         static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

// The child: nothing of the parent's but the pipe, limits that hold even if Duktape's own checks
// fail, then one evaluation. Never returns; no logging (another thread may have held the log's
// lock at fork time) and no exit handlers (_exit).
[[noreturn]] void run_child(int out, const std::string& source, const std::string& url,
                            const std::string& host) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (out > 3) {
    ::close_range(3, static_cast<unsigned>(out) - 1, 0);
  }
  ::close_range(static_cast<unsigned>(out) + 1, ~0U, 0);
  const auto cpu_seconds = static_cast<rlim_t>(
      std::chrono::duration_cast<std::chrono::seconds>(pac_child_time_limit).count());
  const rlimit cpu{cpu_seconds, cpu_seconds + 1};
  ::setrlimit(RLIMIT_CPU, &cpu);
  // What is mapped already (the parent's image, its threads' stacks, a sanitizer's shadow) plus
  // room for the heap cap and Duktape's own needs.
  if (const std::size_t mapped = mapped_bytes(); mapped != 0) {
    const auto room = static_cast<rlim_t>(mapped + 4 * pac_memory_limit);
    const rlimit as{room, room};
    ::setrlimit(RLIMIT_AS, &as);
  }
  std::string detail;
  auto script = pac_script::compile(source, system_pac_environment(), &detail);
  const result<std::string> answer =
      script ? script->find_proxy(url, host, &detail) : result<std::string>(script.error());
  const std::string message = encode_outcome(answer, detail);
  std::string_view rest = message;
  while (!rest.empty()) {
    const ::ssize_t n = ::write(out, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
  ::_exit(0);
}

// Owns the child: kills and reaps it unless reaped already, also when the awaiting coroutine is
// destroyed (cancelled).
struct child_process {
  pid_t pid = -1;
  int status = 0;

  // waitpid, after the child has written its answer or closed the pipe (it exits right after),
  // or after SIGKILL: it does not block for long.
  void reap() {
    while (pid > 0 && ::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    pid = -1;
  }
  void kill() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      reap();
    }
  }
  ~child_process() { kill(); }
};

std::string describe_end(int status, bool timed_out) {
  if (timed_out) {
    return "killed after " + std::to_string(pac_child_time_limit.count()) + " ms";
  }
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    return std::string("killed by signal ") + std::to_string(sig) +
           (sig == SIGXCPU   ? " (CPU time limit)"
            : sig == SIGABRT ? " (aborted: JavaScript engine fatal error or out of memory)"
            : sig == SIGSEGV ? " (out of memory or crash)"
                             : "");
  }
  if (WIFEXITED(status)) {
    return "exited with status " + std::to_string(WEXITSTATUS(status)) + " without an answer";
  }
  return "ended without an answer";
}

}  // namespace

net::awaitable<pac_outcome> find_proxy_in_child(std::string source, std::string url,
                                                std::string host) {
  pac_outcome out;
  if (source.size() > max_pac_script_size) {
    out.answer = make_error_code(pac_errc::too_large);
    co_return out;
  }
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    out.detail = std::string("cannot create a pipe: ") + std::strerror(errno);
    co_return out;
  }
  child_process child;
  child.pid = ::fork();
  if (child.pid < 0) {
    out.detail = std::string("cannot fork: ") + std::strerror(errno);
    ::close(fds[0]);
    ::close(fds[1]);
    co_return out;
  }
  if (child.pid == 0) {
    ::close(fds[0]);
    run_child(fds[1], source, url, host);
  }
  ::close(fds[1]);

  const auto executor = co_await net::this_coro::executor;
  net::posix::stream_descriptor pipe(executor, fds[0]);
  net::steady_timer kill_timer(executor);
  kill_timer.expires_after(pac_child_time_limit);
  std::string received;
  bool timed_out = false;
  std::optional<pac_outcome> decoded;
  while (!decoded) {
    char buffer[4096];
    auto raced = co_await (
        pipe.async_read_some(net::buffer(buffer), net::as_tuple(net::use_awaitable)) ||
        kill_timer.async_wait(net::as_tuple(net::use_awaitable)));
    if (raced.index() == 1) {
      timed_out = true;
      break;
    }
    const auto [ec, n] = std::get<0>(raced);
    received.append(buffer, n);
    if (received.size() > 13 + 2 * max_message_text) {
      break;  // not a message of ours
    }
    decoded = decode_outcome(received);
    if (ec) {
      break;  // end of file: the child is gone
    }
  }
  if (timed_out) {
    child.kill();
  } else {
    child.reap();
  }
  if (decoded) {
    co_return std::move(*decoded);
  }
  out.detail = describe_end(child.status, timed_out);
  co_return out;
}

}  // namespace lanrelay::proxy_resolution
