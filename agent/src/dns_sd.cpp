#include "lanrelay/agent/dns_sd.hpp"

#include "lanrelay/base/sha256.hpp"

#include <ares.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>

namespace lanrelay::agent {
namespace {

namespace net = boost::asio;

constexpr std::string_view fingerprint_key = "site-key-sha256=";

void init_library() {
  static std::once_flag once;
  std::call_once(once, [] { ::ares_library_init(ARES_LIB_INIT_ALL); });
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// One browse: a c-ares channel whose sockets and timeouts run on the coroutine's executor.
// Owned by shared_ptr: Asio handlers keep it alive until they have run, after the channel is
// gone (destroyed_ then tells them to do nothing).
class browse : public std::enable_shared_from_this<browse> {
 public:
  browse(net::any_io_executor executor, const dns_sd_options& options)
      : executor_(executor), options_(options), timer_(executor), done_(executor) {}

  ~browse() { destroy(); }

  bool open(std::string& error) {
    init_library();
    ares_options o{};
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
               ARES_OPT_RESOLVCONF | ARES_OPT_FLAGS;
    o.sock_state_cb = &browse::socket_state;
    o.sock_state_cb_data = this;
    o.timeout = static_cast<int>(std::max<std::int64_t>(1, options_.timeout.count()));
    o.tries = 1;
    o.flags = ARES_FLAG_NOSEARCH;
    const std::string conf = options_.resolv_conf.string();
    o.resolvconf_path = const_cast<char*>(conf.c_str());
    if (const int rc = ::ares_init_options(&channel_, &o, mask); rc != ARES_SUCCESS) {
      error = std::string("cannot start the resolver: ") + ::ares_strerror(rc);
      channel_ = nullptr;
      return false;
    }
    if (!options_.server.empty()) {
      if (const int rc = ::ares_set_servers_ports_csv(channel_, options_.server.c_str());
          rc != ARES_SUCCESS) {
        error = "dns_server " + options_.server + ": " + ::ares_strerror(rc);
        return false;
      }
    }
    return true;
  }

  void start(const std::vector<std::string>& domains) {
    for (const auto& domain : domains) {
      const std::string name = std::string(dns_sd_service) + "." + domain;
      ask(name, ns_t_srv, domain);
      ask(name, ns_t_txt, domain);
    }
    rearm_timer();
  }

  // Address lookups of `hosts`, in order (the targets hold the answers; names()).
  void start_names(const std::vector<std::string>& hosts) {
    for (const auto& host : hosts) {
      dns_sd_relay relay;
      relay.target = host;
      targets_.push_back(std::move(relay));
      resolve(targets_.size() - 1);
    }
    rearm_timer();
  }
  const std::vector<dns_sd_relay>& names() const noexcept { return targets_; }

  // Until every query has answered or failed, or `deadline`.
  net::awaitable<void> wait(std::chrono::steady_clock::time_point deadline) {
    if (pending_ == 0) {
      co_return;
    }
    done_.expires_at(deadline);
    co_await done_.async_wait(net::as_tuple(net::use_awaitable));
  }

  // Cancels what is still pending (its callbacks count as timeouts) and closes the channel.
  void destroy() {
    if (channel_ != nullptr && !destroyed_) {
      destroyed_ = true;
      ::ares_destroy(channel_);  // pending callbacks run with ARES_EDESTRUCTION
      channel_ = nullptr;
    }
    for (auto& [fd, w] : watched_) {
      w->descriptor.release();
    }
    watched_.clear();
    timer_.cancel();
  }

  dns_sd_result result;

 private:
  struct watched_socket {
    explicit watched_socket(net::any_io_executor e, int fd) : descriptor(e, fd) {}
    net::posix::stream_descriptor descriptor;
    bool read = false;
    bool write = false;
    bool reading = false;
    bool writing = false;
  };

  struct query_context {
    std::shared_ptr<browse> self;
    int type = 0;
    std::string domain;
    std::size_t relay = 0;  // for address lookups: index into targets_
  };

  void ask(const std::string& name, int type, const std::string& domain) {
    ++pending_;
    ++result.queries;
    auto* context = new query_context{shared_from_this(), type, domain, 0};
    ::ares_query(channel_, name.c_str(), ns_c_in, type, &browse::answered, context);
  }

  void resolve(std::size_t relay) {
    ++pending_;
    ++result.queries;
    auto* context = new query_context{shared_from_this(), 0, targets_[relay].domain, relay};
    ares_addrinfo_hints hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_flags = ARES_AI_NOSORT;
    ::ares_getaddrinfo(channel_, targets_[relay].target.c_str(), nullptr, &hints,
                       &browse::addresses, context);
  }

  void finished_one(int status) {
    if (status == ARES_ETIMEOUT || status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
      ++result.timeouts;
    }
    if (--pending_ == 0 && !destroyed_) {
      done_.cancel();
    }
  }

  static void answered(void* arg, int status, int /*timeouts*/, unsigned char* buffer, int length) {
    std::unique_ptr<query_context> context(static_cast<query_context*>(arg));
    auto& self = *context->self;
    if (status == ARES_SUCCESS && !self.destroyed_) {
      if (context->type == ns_t_srv) {
        self.read_srv(context->domain, buffer, length);
      } else {
        self.read_txt(context->domain, buffer, length);
      }
    } else if (status != ARES_SUCCESS && status != ARES_ENOTFOUND && status != ARES_ENODATA &&
               status != ARES_EDESTRUCTION) {
      spdlog::debug("event=dns_sd_query_failed domain={} type={} error=\"{}\"", context->domain,
                    context->type == ns_t_srv ? "SRV" : "TXT", ::ares_strerror(status));
    }
    self.finished_one(status);
  }

  void read_srv(const std::string& domain, unsigned char* buffer, int length) {
    ares_srv_reply* replies = nullptr;
    if (::ares_parse_srv_reply(buffer, length, &replies) != ARES_SUCCESS) {
      return;
    }
    for (auto* r = replies; r != nullptr; r = r->next) {
      if (r->host == nullptr || r->port == 0) {
        continue;
      }
      dns_sd_relay relay;
      relay.domain = domain;
      relay.target = r->host;
      relay.port = r->port;
      relay.priority = r->priority;
      targets_.push_back(std::move(relay));
      if (!destroyed_) {
        resolve(targets_.size() - 1);
      }
    }
    ::ares_free_data(replies);
  }

  void read_txt(const std::string& domain, unsigned char* buffer, int length) {
    ares_txt_ext* replies = nullptr;
    if (::ares_parse_txt_reply_ext(buffer, length, &replies) != ARES_SUCCESS) {
      return;
    }
    for (auto* r = replies; r != nullptr; r = r->next) {
      const std::string_view text(reinterpret_cast<const char*>(r->txt), r->length);
      if (text.size() > fingerprint_key.size() &&
          lowercase(text.substr(0, fingerprint_key.size())) == fingerprint_key) {
        fingerprints_[domain].insert(lowercase(text.substr(fingerprint_key.size())));
      }
    }
    ::ares_free_data(replies);
  }

  static void addresses(void* arg, int status, int /*timeouts*/, ares_addrinfo* info) {
    std::unique_ptr<query_context> context(static_cast<query_context*>(arg));
    auto& self = *context->self;
    if (status == ARES_SUCCESS && info != nullptr) {
      auto& relay = self.targets_[context->relay];
      for (auto* node = info->nodes; node != nullptr; node = node->ai_next) {
        if (node->ai_family == AF_INET) {
          const auto* in = reinterpret_cast<const sockaddr_in*>(node->ai_addr);
          relay.addresses.emplace_back(net::ip::address_v4(ntohl(in->sin_addr.s_addr)));
        } else if (node->ai_family == AF_INET6) {
          const auto* in6 = reinterpret_cast<const sockaddr_in6*>(node->ai_addr);
          net::ip::address_v6::bytes_type bytes;
          std::copy_n(in6->sin6_addr.s6_addr, bytes.size(), bytes.begin());
          relay.addresses.emplace_back(net::ip::address_v6(bytes));
        }
      }
    }
    if (info != nullptr) {
      ::ares_freeaddrinfo(info);
    }
    self.finished_one(status);
  }

 public:
  // The relays with addresses, SRV priority first, each with its domain's key fingerprints.
  void collect() {
    std::stable_sort(targets_.begin(), targets_.end(),
                     [](const dns_sd_relay& a, const dns_sd_relay& b) { return a.priority < b.priority; });
    for (auto& relay : targets_) {
      if (relay.addresses.empty()) {
        continue;
      }
      if (const auto it = fingerprints_.find(relay.domain); it != fingerprints_.end()) {
        relay.key_fingerprints = it->second;
      }
      result.relays.push_back(relay);
    }
  }

 private:
  static void socket_state(void* data, ares_socket_t fd, int readable, int writable) {
    static_cast<browse*>(data)->watch(fd, readable != 0, writable != 0);
  }

  void watch(int fd, bool read, bool write) {
    auto it = watched_.find(fd);
    if (!read && !write) {
      if (it != watched_.end()) {
        it->second->descriptor.release();  // c-ares closes it
        watched_.erase(it);
      }
      return;
    }
    if (it == watched_.end()) {
      it = watched_.emplace(fd, std::make_shared<watched_socket>(executor_, fd)).first;
    }
    it->second->read = read;
    it->second->write = write;
    arm(it->second, fd);
  }

  void arm(const std::shared_ptr<watched_socket>& w, int fd) {
    if (w->read && !w->reading) {
      w->reading = true;
      w->descriptor.async_wait(net::posix::stream_descriptor::wait_read,
                               [self = shared_from_this(), w, fd](boost::system::error_code ec) {
                                 w->reading = false;
                                 self->ready(w, fd, ec, true);
                               });
    }
    if (w->write && !w->writing) {
      w->writing = true;
      w->descriptor.async_wait(net::posix::stream_descriptor::wait_write,
                               [self = shared_from_this(), w, fd](boost::system::error_code ec) {
                                 w->writing = false;
                                 self->ready(w, fd, ec, false);
                               });
    }
  }

  void ready(const std::shared_ptr<watched_socket>& w, int fd, boost::system::error_code ec,
             bool readable) {
    if (destroyed_ || ec) {
      return;
    }
    const auto it = watched_.find(fd);
    if (it == watched_.end() || it->second != w) {
      return;  // closed, or the number now names another socket
    }
    ::ares_process_fd(channel_, readable ? fd : ARES_SOCKET_BAD, readable ? ARES_SOCKET_BAD : fd);
    if (destroyed_) {
      return;
    }
    if (const auto again = watched_.find(fd); again != watched_.end() && again->second == w) {
      arm(w, fd);
    }
    rearm_timer();
  }

  void rearm_timer() {
    if (destroyed_ || channel_ == nullptr) {
      return;
    }
    timeval wait{};
    const timeval* next = ::ares_timeout(channel_, nullptr, &wait);
    if (next == nullptr) {
      return;
    }
    const auto delay = std::chrono::seconds(next->tv_sec) + std::chrono::microseconds(next->tv_usec);
    timer_.expires_after(delay);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->destroyed_) {
        return;
      }
      ::ares_process_fd(self->channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
      self->rearm_timer();
    });
  }

  net::any_io_executor executor_;
  dns_sd_options options_;
  ares_channel channel_ = nullptr;
  bool destroyed_ = false;
  std::size_t pending_ = 0;
  std::map<int, std::shared_ptr<watched_socket>> watched_;
  net::steady_timer timer_;
  net::steady_timer done_;
  std::vector<dns_sd_relay> targets_;
  std::map<std::string, std::set<std::string>> fingerprints_;
};

}  // namespace

std::vector<std::string> search_domains(const std::filesystem::path& resolv_conf) {
  std::ifstream in(resolv_conf);
  std::vector<std::string> domains;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string keyword;
    words >> keyword;
    if (keyword != "search" && keyword != "domain") {
      continue;
    }
    domains.clear();
    for (std::string d; words >> d;) {
      if (d.starts_with('#') || d.starts_with(';')) {
        break;
      }
      while (d.ends_with('.')) {
        d.pop_back();
      }
      if (!d.empty()) {
        domains.push_back(lowercase(d));
      }
    }
  }
  return domains;
}

std::string site_key_fingerprint(const public_key& key) {
  return to_hex(sha256_of(key.bytes));
}

net::awaitable<dns_sd_result> browse_dns_sd(const dns_sd_options& options) {
  const auto domains = options.domains.empty() ? search_domains(options.resolv_conf) : options.domains;
  if (domains.empty()) {
    dns_sd_result none;
    none.error = "no search domain in " + options.resolv_conf.string();
    co_return none;
  }
  auto executor = co_await net::this_coro::executor;
  auto session = std::make_shared<browse>(executor, options);
  session->result.domains = domains;
  std::string error;
  if (!session->open(error)) {
    session->destroy();
    dns_sd_result failed = std::move(session->result);
    failed.error = std::move(error);
    co_return failed;
  }
  // SRV/TXT, then the targets' addresses: at most three timeouts, whatever the server does.
  const auto deadline = std::chrono::steady_clock::now() + 3 * options.timeout;
  session->start(domains);
  co_await session->wait(deadline);
  session->destroy();
  session->collect();
  co_return std::move(session->result);
}

net::awaitable<std::vector<std::vector<net::ip::address>>> resolve_hosts(
    const std::vector<std::string>& hosts, const dns_sd_options& options) {
  std::vector<std::vector<net::ip::address>> out(hosts.size());
  auto executor = co_await net::this_coro::executor;
  auto session = std::make_shared<browse>(executor, options);
  std::string error;
  if (!session->open(error)) {
    spdlog::info("event=relay_names_unresolved error=\"{}\"", error);
    session->destroy();
    co_return out;
  }
  const auto deadline = std::chrono::steady_clock::now() + options.timeout;
  session->start_names(hosts);
  co_await session->wait(deadline);
  session->destroy();
  for (std::size_t i = 0; i < hosts.size() && i < session->names().size(); ++i) {
    out[i] = session->names()[i].addresses;
  }
  co_return out;
}

}  // namespace lanrelay::agent
