#pragma once

// A real upstream for ActiveUpdate tests: nginx (Debian's) serving a generated AU tree from a
// temporary directory on 127.0.0.1 (or inside a test segment's namespace), over http:// or
// https://, with an access log the tests read to count requests.

#include "lanrelay/content/activeupdate_index.hpp"
#include "free_port.hpp"
#include "process.hpp"
#include "segment.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace lanrelay::test {

namespace au_fs = std::filesystem;
using namespace std::chrono_literals;

inline constexpr std::string_view nginx_path = "/usr/sbin/nginx";


inline std::string slurp(const au_fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

inline void spew(const au_fs::path& file, std::string_view text) {
  au_fs::create_directories(file.parent_path());
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
}

inline std::uint64_t size_or_zero(const au_fs::path& file) {
  std::error_code ec;
  const auto n = au_fs::file_size(file, ec);
  return ec ? 0 : n;
}

inline bool can_connect(unsigned short port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// One line of nginx's access log.
struct request_line {
  std::string method;
  std::string uri;
  unsigned status = 0;
  std::uint64_t bytes = 0;
  std::string range;          // "-" when absent
  std::string if_none_match;  // likewise
};

inline bool can_connect_in(const std::string& netns, const std::string& address,
                           unsigned short port) {
  const int fd = socket_in_netns(netns, AF_INET, SOCK_STREAM);
  if (fd < 0) {
    return false;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  ::inet_pton(AF_INET, address.c_str(), &addr.sin_addr);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// Where nginx listens: by default a free port on 127.0.0.1 of the test's own namespace; or an
// address and port inside a network namespace of a test segment (segment.hpp).
struct listen_on {
  std::string netns;
  std::string address = "127.0.0.1";
  unsigned short port = 0;  // 0: a free port (own namespace only)
};

// nginx as a child process: one process (master_process off), so kill -9 ends every transfer.
class nginx {
 public:
  nginx(au_fs::path prefix, au_fs::path root, listen_on where = {})
      : prefix_(std::move(prefix)), root_(std::move(root)), where_(std::move(where)) {
    port_ = where_.port != 0 ? where_.port : free_port();
  }

  // Serve https:// instead (PEM certificate and key), from the next start().
  void use_tls(au_fs::path certificate, au_fs::path key) {
    certificate_ = std::move(certificate);
    key_ = std::move(key);
  }

  // Answer 403 to every client but `address` (e.g. a proxy's tcp_outgoing_address), from the
  // next start(): the origin is then reachable only through that proxy.
  void allow_only(std::string address) { allow_only_ = std::move(address); }

  // Serves root_; `slow_uri` (exact URI, or a prefix when it ends with '/'), when set, at `rate`
  // bytes per second.
  void start(const std::string& slow_uri = {}, const std::string& rate = "512k") {
    au_fs::create_directories(prefix_);
    au_fs::remove(prefix_ / "access.log");
    std::ostringstream conf;
    if (::geteuid() == 0) {
      conf << "user root;\n";
    }
    conf << "master_process off;\n"
         << "worker_processes 1;\n"
         << "error_log " << (prefix_ / "error.log").string() << " info;\n"
         << "pid " << (prefix_ / "nginx.pid").string() << ";\n"
         << "events { worker_connections 64; }\n"
         << "http {\n"
         << "  log_format mirror '$request_method|$uri|$status|$body_bytes_sent|$http_range|"
            "$http_if_none_match';\n"
         << "  access_log " << (prefix_ / "access.log").string() << " mirror;\n"
         << "  client_body_temp_path " << (prefix_ / "body").string() << ";\n"
         << "  proxy_temp_path " << (prefix_ / "proxy").string() << ";\n"
         << "  fastcgi_temp_path " << (prefix_ / "fastcgi").string() << ";\n"
         << "  uwsgi_temp_path " << (prefix_ / "uwsgi").string() << ";\n"
         << "  scgi_temp_path " << (prefix_ / "scgi").string() << ";\n"
         << "  sendfile off;\n"
         << "  server {\n"
         << "    listen " << where_.address << ":" << port_
         << (certificate_.empty() ? "" : " ssl") << ";\n"
         << "    root " << root_.string() << ";\n";
    if (!allow_only_.empty()) {
      conf << "    allow " << allow_only_ << ";\n    deny all;\n";
    }
    if (!certificate_.empty()) {
      conf << "    ssl_certificate " << certificate_.string() << ";\n"
           << "    ssl_certificate_key " << key_.string() << ";\n";
    }
    if (!slow_uri.empty()) {
      conf << "    location " << (slow_uri.back() == '/' ? "" : "= ") << slow_uri
           << " { limit_rate " << rate << "; }\n";
    }
    conf << "  }\n}\n";
    spew(prefix_ / "nginx.conf", conf.str());
    proc_ = process({std::string(nginx_path), "-e", (prefix_ / "error.log").string(), "-c",
                           (prefix_ / "nginx.conf").string(), "-p", prefix_.string() + "/", "-g",
                           "daemon off;"},
                          {.netns = where_.netns, .output = prefix_ / "nginx.out"});
    ASSERT_TRUE(eventually(10s, [&] {
      return where_.netns.empty() ? can_connect(port_)
                                  : can_connect_in(where_.netns, where_.address, port_);
    }))
        << read_file(prefix_ / "nginx.out") << read_file(prefix_ / "error.log");
  }

  void kill() { proc_.kill(); }

  unsigned short port() const { return port_; }

  std::vector<request_line> log() const {
    std::vector<request_line> lines;
    std::istringstream in(slurp(prefix_ / "access.log"));
    std::string text;
    while (std::getline(in, text)) {
      std::vector<std::string> fields;
      std::istringstream parts(text);
      std::string field;
      while (std::getline(parts, field, '|')) {
        fields.push_back(field);
      }
      if (fields.size() != 6) {
        continue;
      }
      lines.push_back({fields[0], fields[1], static_cast<unsigned>(std::stoul(fields[2])),
                       std::stoull(fields[3]), fields[4], fields[5]});
    }
    return lines;
  }

  // Waits until the log holds `n` lines (nginx writes a line just after the response) and
  // returns them.
  std::vector<request_line> log_of(std::size_t n) const {
    std::vector<request_line> lines;
    eventually(30s, [&] {
      lines = log();
      return lines.size() >= n;
    });
    return lines;
  }

 private:
  au_fs::path prefix_;
  au_fs::path root_;
  au_fs::path certificate_;
  au_fs::path key_;
  std::string allow_only_;
  listen_on where_;
  unsigned short port_ = 0;
  process proc_;
};

// An upstream AU tree under <root>/activeupdate/.
class au_tree {
 public:
  explicit au_tree(au_fs::path root) : base_(std::move(root) / "activeupdate") {}

  // Writes `size` pseudo-random bytes at `path` (and a .sig beside a .zip); returns the size.
  std::uint64_t add(const std::string& path, std::uint64_t size) {
    std::mt19937_64 random(std::hash<std::string>{}(path));
    std::string bytes(size, '\0');
    for (auto& c : bytes) {
      c = static_cast<char>(random());
    }
    spew(base_ / path, bytes);
    sizes_[path] = size;
    if (activeupdate::needs_signature(path)) {
      const std::string sig = activeupdate::signature_path(path);
      std::string signature(2'000 + size % 1'000, '\0');
      for (auto& c : signature) {
        c = static_cast<char>(random());
      }
      spew(base_ / sig, signature);
      sizes_[sig] = signature.size();
    }
    return size;
  }

  std::uint64_t size(const std::string& path) const { return sizes_.at(path); }
  au_fs::path file(const std::string& path) const { return base_ / path; }

  void publish(const std::string& server_ini) {
    server_ini_ = server_ini;
    spew(base_ / "server.ini", server_ini);
    // nginx's ETag is mtime (seconds) and size: two indexes of equal length published within a
    // second would look the same, so each publication gets its own second.
    ++publications_;
    au_fs::last_write_time(base_ / "server.ini",
                        au_fs::file_time_type::clock::now() - std::chrono::hours(1) +
                            std::chrono::seconds(publications_));
  }
  const std::string& server_ini() const { return server_ini_; }

 private:
  au_fs::path base_;
  std::map<std::string, std::uint64_t> sizes_;
  std::string server_ini_;
  int publications_ = 0;
};

}  // namespace lanrelay::test
