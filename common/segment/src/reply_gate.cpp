#include "lanrelay/segment/reply_gate.hpp"

#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <tuple>

namespace lanrelay {
namespace {

namespace ip = boost::asio::ip;

std::array<unsigned char, 16> key_bytes(const ip::address& address) {
  if (address.is_v4()) {
    return ip::make_address_v6(ip::v4_mapped, address.to_v4()).to_bytes();
  }
  return address.to_v6().to_bytes();
}

// The queued bytes and the send buffer of `socket`; {0, 0} when the kernel does not say (then
// every answer counts as fitting).
std::pair<std::size_t, std::size_t> send_queue(boost::asio::ip::udp::socket& socket) {
  int queued = 0;
  int buffer = 0;
  socklen_t length = sizeof buffer;
  if (::ioctl(socket.native_handle(), SIOCOUTQ, &queued) != 0 ||
      ::getsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDBUF, &buffer, &length) != 0 ||
      queued < 0 || buffer <= 0) {
    return {0, 0};
  }
  return {static_cast<std::size_t>(queued), static_cast<std::size_t>(buffer)};
}

}  // namespace

neighbour_table::neighbour_table() = default;

neighbour_table::~neighbour_table() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

neighbour_state neighbour_table::lookup(const ip::address& address, unsigned interface_index) {
  if (!tried_) {
    tried_ = true;
    fd_ = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
  }
  if (fd_ < 0 || interface_index == 0) {
    return neighbour_state::none;
  }
  const bool v4 = address.is_v4() || address.to_v6().is_v4_mapped();
  struct request {
    nlmsghdr header;
    ndmsg neighbour;
    alignas(NLMSG_ALIGNTO) unsigned char attribute[RTA_SPACE(16)];
  } r{};
  const std::size_t address_size = v4 ? 4 : 16;
  r.header.nlmsg_len = static_cast<std::uint32_t>(NLMSG_LENGTH(sizeof(ndmsg)) +
                                                  RTA_LENGTH(address_size));
  r.header.nlmsg_type = RTM_GETNEIGH;
  r.header.nlmsg_flags = NLM_F_REQUEST;
  r.header.nlmsg_seq = ++sequence_;
  r.neighbour.ndm_family = v4 ? AF_INET : AF_INET6;
  r.neighbour.ndm_ifindex = static_cast<int>(interface_index);
  auto* attribute = reinterpret_cast<rtattr*>(r.attribute);
  attribute->rta_type = NDA_DST;
  attribute->rta_len = static_cast<unsigned short>(RTA_LENGTH(address_size));
  if (v4) {
    const auto bytes = (address.is_v4() ? address.to_v4()
                                        : ip::make_address_v4(ip::v4_mapped, address.to_v6()))
                           .to_bytes();
    std::memcpy(RTA_DATA(attribute), bytes.data(), bytes.size());
  } else {
    const auto bytes = address.to_v6().to_bytes();
    std::memcpy(RTA_DATA(attribute), bytes.data(), bytes.size());
  }
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd_, &r, r.header.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel),
               sizeof kernel) < 0) {
    return neighbour_state::none;
  }
  // The kernel answers a request before sendto returns; stale answers (a lookup whose answer
  // was not read) are skipped by their sequence number.
  alignas(nlmsghdr) unsigned char answer[1024];
  for (;;) {
    const ssize_t n = ::recv(fd_, answer, sizeof answer, MSG_DONTWAIT);
    if (n < 0) {
      return neighbour_state::none;
    }
    auto length = static_cast<std::uint32_t>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(answer); NLMSG_OK(h, length);
         h = NLMSG_NEXT(h, length)) {
      if (h->nlmsg_seq != sequence_) {
        continue;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        return neighbour_state::none;  // ENOENT: no entry; anything else: not known either
      }
      if (h->nlmsg_type != RTM_NEWNEIGH || h->nlmsg_len < NLMSG_LENGTH(sizeof(ndmsg))) {
        return neighbour_state::none;
      }
      const auto* found = static_cast<const ndmsg*>(NLMSG_DATA(h));
      const auto state = found->ndm_state;
      if ((state & (NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT |
                    NUD_NOARP)) != 0) {
        return neighbour_state::resolved;
      }
      if ((state & NUD_INCOMPLETE) != 0) {
        return neighbour_state::resolving;
      }
      if ((state & NUD_FAILED) != 0) {
        return neighbour_state::failed;
      }
      return neighbour_state::none;
    }
  }
}

reply_gate::reply_gate(segment_drop_counters& counters, lookup_function lookup)
    : counters_(counters),
      lookup_(std::move(lookup)),
      kernel_(lookup_ ? nullptr : std::make_unique<neighbour_table>()),
      slots_(std::make_unique<slot[]>(slots)) {}

reply_gate::slot& reply_gate::slot_for(const std::array<unsigned char, 16>& address,
                                       unsigned interface) noexcept {
  return slots_[hash_(address, interface) % slots];
}

reply_gate::slot& reply_gate::classify(const ip::address& destination, unsigned interface_index,
                                       std::chrono::steady_clock::time_point now) {
  const auto address = key_bytes(destination);
  slot& s = slot_for(address, interface_index);
  if (s.address != address || s.interface != interface_index) {
    s = slot{};
    s.address = address;
    s.interface = interface_index;
  }
  if (now < s.until) {
    return s;
  }
  auto state = lookup_ ? lookup_(destination, interface_index)
                       : kernel_->lookup(destination, interface_index);
  if (state == neighbour_state::none && s.answered_without_entry) {
    // Still no entry after an answer went out: the kernel keeps none for this destination
    // (loopback, a local address, a full neighbour table), so its answers do not wait.
    state = neighbour_state::resolved;
  } else if (state == neighbour_state::resolving || state == neighbour_state::failed) {
    s.answered_without_entry = false;
  }
  s.state = state;
  // "No entry" is asked again next time: the answer sent now creates the entry.
  s.until = state == neighbour_state::none ? now : now + resolved_for;
  return s;
}

std::optional<reply_gate::verdict> reply_gate::without_room(const slot& s,
                                                            std::chrono::steady_clock::time_point now) {
  switch (s.state) {
    case neighbour_state::resolved:
      return verdict::send;
    case neighbour_state::resolving:
      ++counters_.unresolved_neighbour;
      return verdict::unresolved_neighbour;
    case neighbour_state::failed:
      if (now < s.quiet_until) {
        ++counters_.unresolved_neighbour;
        return verdict::unresolved_neighbour;
      }
      return std::nullopt;
    case neighbour_state::none:
      return std::nullopt;
  }
  return std::nullopt;
}

reply_gate::verdict reply_gate::with_room(slot& s, std::size_t size, std::size_t& queued,
                                          std::size_t send_buffer,
                                          std::chrono::steady_clock::time_point now) {
  // It will wait in the kernel: only within half the send buffer (send_buffer 0: not known).
  const std::size_t cost = size + overhead;
  if (send_buffer != 0 && queued + cost > send_buffer / 2) {
    s.until = now;  // not answered: asked again next time
    ++counters_.send_queue_full;
    return verdict::send_queue_full;
  }
  queued += cost;
  if (s.state == neighbour_state::failed) {
    s.quiet_until = now + failed_quiet;
    s.until = now + resolved_for;
  } else {
    // The kernel creates the entry when the batch is sent: until then, this answer is the one
    // that waits for the neighbour (a source repeated within one batch gets one answer).
    s.answered_without_entry = true;
    s.until = now + just_sent;
  }
  s.state = neighbour_state::resolving;
  return verdict::send;
}

reply_gate::verdict reply_gate::check(const ip::address& destination, unsigned interface_index,
                                      std::size_t size, std::size_t& queued,
                                      std::size_t send_buffer,
                                      std::chrono::steady_clock::time_point now) {
  slot& s = classify(destination, interface_index, now);
  if (const auto v = without_room(s, now)) {
    return *v;
  }
  return with_room(s, size, queued, send_buffer, now);
}

std::size_t reply_gate::send(ip::udp::socket& socket, std::span<const outgoing_datagram> answers,
                             std::chrono::steady_clock::time_point now, std::size_t& refused) {
  admitted_.clear();
  std::optional<std::pair<std::size_t, std::size_t>> queue;  // read when first needed
  for (const auto& a : answers) {
    slot& s = classify(a.destination.address(), a.interface_index, now);
    auto v = without_room(s, now);
    if (!v) {
      if (!queue) {
        queue = send_queue(socket);
      }
      v = with_room(s, a.data.size(), queue->first, queue->second, now);
    }
    if (*v == verdict::send) {
      admitted_.push_back(a);
    }
  }
  const std::size_t sent = send_datagrams(socket, admitted_);
  refused = admitted_.size() - sent;
  return sent;
}

}  // namespace lanrelay
