#include "lanrelay/segment/source_rate_limiter.hpp"

#include <algorithm>
#include <iterator>

namespace lanrelay {

namespace ip = boost::asio::ip;
using clock_type = std::chrono::steady_clock;

namespace {

// The burst a known source may spend at once, in seconds of its rate.
constexpr double source_burst_seconds = 2.0;
// The newcomer bucket's burst, in seconds of new_source_rate.
constexpr double newcomer_burst_seconds = 1.0;

double refill(double tokens, double rate, double burst, clock_type::time_point from,
              clock_type::time_point to) noexcept {
  const std::chrono::duration<double> elapsed = to - from;
  return std::min(burst, tokens + std::max(0.0, elapsed.count()) * rate);
}

}  // namespace

source_rate_limiter::source_rate_limiter(settings s)
    : settings_(s), table_(std::make_unique<entry[]>(entry_count)) {}

std::size_t source_rate_limiter::set_of(const address_bytes& address,
                                        unsigned interface) const noexcept {
  return static_cast<std::size_t>(hash_(address, interface) % set_count);
}

bool source_rate_limiter::take_newcomer_token(bool v6, unsigned interface,
                                              clock_type::time_point now) {
  const double rate = settings_.new_source_rate;
  const double burst = std::max(1.0, rate * newcomer_burst_seconds);
  auto it = std::find_if(newcomers_.begin(), newcomers_.end(), [&](const newcomer_bucket& b) {
    return b.v6 == v6 && b.interface == interface;
  });
  if (it == newcomers_.end()) {
    newcomers_.push_back({interface, v6, burst, now});
    it = std::prev(newcomers_.end());
  }
  it->tokens = refill(it->tokens, rate, burst, it->updated, now);
  it->updated = std::max(it->updated, now);
  if (it->tokens < 1.0) {
    return false;
  }
  it->tokens -= 1.0;
  return true;
}

source_rate_limiter::entry* source_rate_limiter::victim(entry* ways,
                                                        clock_type::time_point now) noexcept {
  entry* probationary = nullptr;
  entry* idle = nullptr;
  const auto full_after = std::chrono::duration_cast<clock_type::duration>(
      std::chrono::duration<double>(source_burst_seconds));
  for (std::size_t w = 0; w < way_count; ++w) {
    entry& e = ways[w];
    if (!e.used) {
      return &e;
    }
    if (!e.established) {
      if (probationary == nullptr || e.updated < probationary->updated) {
        probationary = &e;
      }
    } else if (now - e.updated >= full_after && (idle == nullptr || e.updated < idle->updated)) {
      idle = &e;
    }
  }
  return probationary != nullptr ? probationary : idle;
}

source_rate_limiter::verdict source_rate_limiter::admit(const ip::address& source,
                                                        unsigned interface_index,
                                                        clock_type::time_point now) {
  address_bytes address{};
  bool v6 = true;
  if (source.is_v4()) {
    address = ip::make_address_v6(ip::v4_mapped, source.to_v4()).to_bytes();
    v6 = false;
  } else {
    address = source.to_v6().to_bytes();
    v6 = !source.to_v6().is_v4_mapped();
  }
  const double rate = settings_.rate;
  const double burst = std::max(1.0, rate * source_burst_seconds);
  entry* ways = &table_[set_of(address, interface_index) * way_count];
  for (std::size_t w = 0; w < way_count; ++w) {
    entry& e = ways[w];
    if (!e.used || e.address != address || e.interface != interface_index) {
      continue;
    }
    double tokens = refill(e.tokens, rate, burst, e.updated, now);
    if (!e.established && now - e.first_seen >= establish_after) {
      e.established = true;
    }
    e.updated = std::max(e.updated, now);
    if (tokens < 1.0) {
      e.tokens = static_cast<float>(tokens);
      return verdict::source_over_rate;
    }
    e.tokens = static_cast<float>(tokens - 1.0);
    return verdict::admitted;
  }

  if (!take_newcomer_token(v6, interface_index, now)) {
    return verdict::newcomers_over_rate;
  }
  if (entry* e = victim(ways, now)) {
    if (!e->used) {
      ++tracked_;
    }
    *e = entry{address, interface_index, true, false, static_cast<float>(burst - 1.0), now, now};
  }
  return verdict::admitted;
}

bool is_unicast_sender(const ip::udp::endpoint& source, const network_interface& arrival) noexcept {
  if (source.port() == 0) {
    return false;
  }
  const ip::address& address = source.address();
  if (address.is_unspecified() || address.is_multicast()) {
    return false;
  }
  if (address.is_v6() && !address.to_v6().is_v4_mapped()) {
    return true;
  }
  const ip::address_v4 v4 = address.is_v4() ? address.to_v4()
                                            : ip::make_address_v4(ip::v4_mapped, address.to_v6());
  if (v4 == ip::address_v4::broadcast() || v4.is_unspecified() || v4.is_multicast()) {
    return false;
  }
  return std::none_of(arrival.ipv4.begin(), arrival.ipv4.end(), [&](const ipv4_binding& b) {
    if (b.network.prefix_length() >= 31) {
      return false;
    }
    const std::uint32_t mask = b.network.netmask().to_uint();
    const std::uint32_t net = b.network.address().to_uint() & mask;
    return v4.to_uint() == net || v4.to_uint() == (net | ~mask);
  });
}

}  // namespace lanrelay
