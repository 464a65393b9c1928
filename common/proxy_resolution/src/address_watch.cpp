#include "lanrelay/proxy_resolution/address_watch.hpp"

#include "lanrelay/base/file_io.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>

namespace lanrelay::proxy_resolution {

namespace net = boost::asio;

std::size_t count_address_changes(std::span<const std::byte> datagram, const sockaddr_nl& sender) {
  if (sender.nl_family != AF_NETLINK || sender.nl_pid != 0) {
    return 0;
  }
  std::size_t changes = 0;
  auto length = static_cast<unsigned>(datagram.size());
  // NLMSG_OK and NLMSG_NEXT walk the datagram within `length`; the headers are read unaligned.
  for (auto* header = reinterpret_cast<const nlmsghdr*>(datagram.data()); NLMSG_OK(header, length);
       header = NLMSG_NEXT(header, length)) {
    if (header->nlmsg_type == RTM_NEWADDR || header->nlmsg_type == RTM_DELADDR) {
      ++changes;
    }
  }
  return changes;
}

std::uint32_t address_watch::port_id() const {
  sockaddr_nl local{};
  socklen_t size = sizeof local;
  if (!socket_.is_open() ||
      ::getsockname(const_cast<net::posix::stream_descriptor&>(socket_).native_handle(),
                    reinterpret_cast<sockaddr*>(&local), &size) != 0) {
    return 0;
  }
  return local.nl_pid;
}

address_watch::address_watch(const net::any_io_executor& executor) : socket_(executor) {
  unique_fd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd) {
    open_error_ = last_errno();
    return;
  }
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  local.nl_groups = RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
    open_error_ = last_errno();
    return;
  }
  socket_.assign(fd.release(), open_error_);
}

net::awaitable<result<std::size_t>> address_watch::wait() {
  if (!socket_.is_open()) {
    co_return open_error_ ? open_error_ : boost::system::errc::make_error_code(boost::system::errc::bad_file_descriptor);
  }
  // Netlink datagrams are 4-byte aligned messages; the buffer is aligned for their headers.
  alignas(nlmsghdr) std::array<std::byte, 16384> buffer{};
  while (true) {
    auto [ec] = co_await socket_.async_wait(net::posix::stream_descriptor::wait_read,
                                            net::as_tuple(net::use_awaitable));
    if (ec) {
      co_return ec;
    }
    std::size_t changes = 0;
    while (true) {
      sockaddr_nl sender{};
      socklen_t sender_size = sizeof sender;
      const ssize_t n = ::recvfrom(socket_.native_handle(), buffer.data(), buffer.size(), 0,
                                   reinterpret_cast<sockaddr*>(&sender), &sender_size);
      if (n < 0) {
        if (errno == ENOBUFS) {
          ++changes;  // the kernel dropped messages: assume the addresses changed
          continue;
        }
        break;  // EAGAIN: drained
      }
      if (sender.nl_pid != 0) {
        ++dropped_;  // another process, not the kernel
        continue;
      }
      changes += count_address_changes(
          std::span<const std::byte>(buffer.data(), static_cast<std::size_t>(n)), sender);
    }
    if (changes > 0) {
      co_return changes;
    }
  }
}

}  // namespace lanrelay::proxy_resolution
