#include "lanrelay/common/datagram.hpp"

#include <boost/asio/error.hpp>

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

namespace lanrelay {
namespace {

namespace ip = boost::asio::ip;

boost::system::error_code last_error() {
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    return boost::asio::error::would_block;
  }
  return {errno, boost::system::system_category()};
}

ip::udp::endpoint to_endpoint(const sockaddr_storage& storage) {
  if (storage.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(storage);
    return {ip::address_v4(ntohl(in.sin_addr.s_addr)), ntohs(in.sin_port)};
  }
  const auto& in6 = reinterpret_cast<const sockaddr_in6&>(storage);
  ip::address_v6::bytes_type bytes;
  std::copy_n(in6.sin6_addr.s6_addr, bytes.size(), bytes.begin());
  return {ip::address_v6(bytes, in6.sin6_scope_id), ntohs(in6.sin6_port)};
}

}  // namespace

boost::system::error_code enable_arrival_interface(ip::udp::socket& socket) {
  const int on = 1;
  const bool v4 = socket.local_endpoint().protocol() == ip::udp::v4();
  const int rc = v4 ? ::setsockopt(socket.native_handle(), IPPROTO_IP, IP_PKTINFO, &on, sizeof on)
                    : ::setsockopt(socket.native_handle(), IPPROTO_IPV6, IPV6_RECVPKTINFO, &on,
                                   sizeof on);
  if (rc != 0) {
    return last_error();
  }
  socket.non_blocking(true);
  return {};
}

boost::system::error_code receive_datagram(ip::udp::socket& socket, std::span<std::byte> buffer,
                                           received_datagram& out) {
  sockaddr_storage source{};
  iovec iov{buffer.data(), buffer.size()};
  alignas(cmsghdr) std::byte control[CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(in_pktinfo))];
  msghdr msg{};
  msg.msg_name = &source;
  msg.msg_namelen = sizeof source;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;

  const ssize_t n = ::recvmsg(socket.native_handle(), &msg, MSG_DONTWAIT);
  if (n < 0) {
    return last_error();
  }
  out = received_datagram{};
  out.size = static_cast<std::size_t>(n);
  out.truncated = (msg.msg_flags & MSG_TRUNC) != 0;
  out.source = to_endpoint(source);
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      in_pktinfo info{};
      std::memcpy(&info, CMSG_DATA(c), sizeof info);
      out.interface_index = static_cast<unsigned>(info.ipi_ifindex);
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      in6_pktinfo info{};
      std::memcpy(&info, CMSG_DATA(c), sizeof info);
      out.interface_index = info.ipi6_ifindex;
    }
  }
  return {};
}

boost::system::error_code send_datagram(ip::udp::socket& socket, std::span<const std::byte> data,
                                        const ip::udp::endpoint& destination,
                                        unsigned interface_index) {
  iovec iov{const_cast<std::byte*>(data.data()), data.size()};
  alignas(cmsghdr) std::byte control[CMSG_SPACE(sizeof(in6_pktinfo))]{};
  msghdr msg{};
  msg.msg_name = const_cast<sockaddr*>(destination.data());
  msg.msg_namelen = static_cast<socklen_t>(destination.size());
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (interface_index != 0) {
    msg.msg_control = control;
    cmsghdr* c = reinterpret_cast<cmsghdr*>(control);
    if (destination.address().is_v4()) {
      msg.msg_controllen = CMSG_SPACE(sizeof(in_pktinfo));
      c->cmsg_level = IPPROTO_IP;
      c->cmsg_type = IP_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
      in_pktinfo info{};
      info.ipi_ifindex = static_cast<int>(interface_index);
      std::memcpy(CMSG_DATA(c), &info, sizeof info);
    } else {
      msg.msg_controllen = CMSG_SPACE(sizeof(in6_pktinfo));
      c->cmsg_level = IPPROTO_IPV6;
      c->cmsg_type = IPV6_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
      in6_pktinfo info{};
      info.ipi6_ifindex = interface_index;
      std::memcpy(CMSG_DATA(c), &info, sizeof info);
    }
  }
  if (::sendmsg(socket.native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
    return last_error();
  }
  return {};
}

}  // namespace lanrelay
