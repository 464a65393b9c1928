#include "lanrelay/segment/datagram.hpp"

#include <boost/asio/error.hpp>

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
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

namespace {

constexpr std::size_t control_size = CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(in_pktinfo));

unsigned arrival_interface(msghdr& msg, ip::address* destination = nullptr) {
  unsigned index = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
      in_pktinfo info{};
      std::memcpy(&info, CMSG_DATA(c), sizeof info);
      index = static_cast<unsigned>(info.ipi_ifindex);
      if (destination != nullptr) {
        *destination = ip::address_v4(ntohl(info.ipi_addr.s_addr));
      }
    } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      in6_pktinfo info{};
      std::memcpy(&info, CMSG_DATA(c), sizeof info);
      index = info.ipi6_ifindex;
      if (destination != nullptr) {
        ip::address_v6::bytes_type bytes;
        std::copy_n(info.ipi6_addr.s6_addr, bytes.size(), bytes.begin());
        *destination = ip::address_v6(bytes);
      }
    }
  }
  return index;
}

// Fills `control` with the pktinfo that sends a datagram out of `interface_index` (from `source`
// when it is an address of the destination's family); returns the control length to use (0:
// none).
std::size_t outgoing_interface(std::byte* control, const ip::udp::endpoint& destination,
                               unsigned interface_index, const ip::address& source = {}) {
  const bool from_v4 = source.is_v4() && !source.is_unspecified() && destination.address().is_v4();
  const bool from_v6 = source.is_v6() && !source.is_unspecified() && destination.address().is_v6();
  if (interface_index == 0 && !from_v4 && !from_v6) {
    return 0;
  }
  auto* c = reinterpret_cast<cmsghdr*>(control);
  if (destination.address().is_v4()) {
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
    in_pktinfo info{};
    info.ipi_ifindex = static_cast<int>(interface_index);
    if (from_v4) {
      info.ipi_spec_dst.s_addr = htonl(source.to_v4().to_uint());
    }
    std::memcpy(CMSG_DATA(c), &info, sizeof info);
    return CMSG_SPACE(sizeof(in_pktinfo));
  }
  c->cmsg_level = IPPROTO_IPV6;
  c->cmsg_type = IPV6_PKTINFO;
  c->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
  in6_pktinfo info{};
  info.ipi6_ifindex = interface_index;
  if (from_v6) {
    const auto bytes = source.to_v6().to_bytes();
    std::copy(bytes.begin(), bytes.end(), info.ipi6_addr.s6_addr);
  }
  std::memcpy(CMSG_DATA(c), &info, sizeof info);
  return CMSG_SPACE(sizeof(in6_pktinfo));
}

}  // namespace

boost::system::error_code receive_datagrams(ip::udp::socket& socket,
                                            std::span<std::span<std::byte>> buffers,
                                            std::vector<received_datagram>& out) {
  constexpr std::size_t max_batch = 64;
  const std::size_t count = std::min(buffers.size(), max_batch);
  std::array<sockaddr_storage, max_batch> sources{};
  std::array<iovec, max_batch> iov{};
  struct alignas(cmsghdr) control_block {
    std::byte bytes[control_size];
  };
  std::array<control_block, max_batch> controls{};
  std::array<mmsghdr, max_batch> msgs{};
  for (std::size_t i = 0; i < count; ++i) {
    iov[i] = {buffers[i].data(), buffers[i].size()};
    msgs[i].msg_hdr.msg_name = &sources[i];
    msgs[i].msg_hdr.msg_namelen = sizeof sources[i];
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_control = controls[i].bytes;
    msgs[i].msg_hdr.msg_controllen = control_size;
  }
  const int n = ::recvmmsg(socket.native_handle(), msgs.data(), static_cast<unsigned>(count),
                           MSG_DONTWAIT, nullptr);
  if (n < 0) {
    out.clear();
    return last_error();
  }
  out.resize(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i].size = msgs[i].msg_len;
    out[i].truncated = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
    out[i].source = to_endpoint(sources[i]);
    out[i].destination = ip::address();
    out[i].interface_index = arrival_interface(msgs[i].msg_hdr, &out[i].destination);
  }
  return {};
}

std::size_t send_datagrams(ip::udp::socket& socket, std::span<const outgoing_datagram> datagrams) {
  constexpr std::size_t max_batch = 64;
  std::size_t sent = 0;
  std::size_t next = 0;
  while (next < datagrams.size()) {
    const std::size_t count = std::min(datagrams.size() - next, max_batch);
    std::array<iovec, max_batch> iov{};
    struct alignas(cmsghdr) control_block {
      std::byte bytes[CMSG_SPACE(sizeof(in6_pktinfo))];
    };
    std::array<control_block, max_batch> controls{};
    std::array<mmsghdr, max_batch> msgs{};
    for (std::size_t i = 0; i < count; ++i) {
      const auto& d = datagrams[next + i];
      iov[i] = {const_cast<std::byte*>(d.data.data()), d.data.size()};
      msgs[i].msg_hdr.msg_name = const_cast<sockaddr*>(d.destination.data());
      msgs[i].msg_hdr.msg_namelen = static_cast<socklen_t>(d.destination.size());
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      const std::size_t control_length =
          outgoing_interface(controls[i].bytes, d.destination, d.interface_index, d.source);
      if (control_length != 0) {
        msgs[i].msg_hdr.msg_control = controls[i].bytes;
        msgs[i].msg_hdr.msg_controllen = control_length;
      }
    }
    const int n = ::sendmmsg(socket.native_handle(), msgs.data(), static_cast<unsigned>(count),
                             MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n <= 0) {
      ++next;  // the first datagram of the batch was refused: skip it, try the rest
      continue;
    }
    sent += static_cast<std::size_t>(n);
    next += static_cast<std::size_t>(n);
  }
  return sent;
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
  out.interface_index = arrival_interface(msg, &out.destination);
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
  if (const std::size_t length = outgoing_interface(control, destination, interface_index)) {
    msg.msg_control = control;
    msg.msg_controllen = length;
  }
  if (::sendmsg(socket.native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
    return last_error();
  }
  return {};
}

}  // namespace lanrelay
