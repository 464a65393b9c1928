#include "lanrelay/segment/responder_guard.hpp"

namespace lanrelay {

std::uint64_t segment_drop_counters::dropped_on_receipt() const noexcept {
  constexpr auto relaxed = std::memory_order_relaxed;
  return malformed.load(relaxed) + own_packets.load(relaxed) + off_link.load(relaxed) +
         bad_source.load(relaxed) + rate_limited.load(relaxed) + new_source_limited.load(relaxed);
}

void add_to_json(boost::json::object& o, const segment_drop_counters& c) {
  o["malformed"] = c.malformed.load();
  o["own_packets"] = c.own_packets.load();
  o["off_link"] = c.off_link.load();
  o["bad_source"] = c.bad_source.load();
  o["rate_limited"] = c.rate_limited.load();
  o["new_source_limited"] = c.new_source_limited.load();
  o["unresolved_neighbour"] = c.unresolved_neighbour.load();
  o["send_queue_full"] = c.send_queue_full.load();
}

std::vector<metrics::sample> drop_samples(const segment_drop_counters& c) {
  const auto v = [](const std::atomic<std::uint64_t>& a) {
    return static_cast<double>(a.load(std::memory_order_relaxed));
  };
  return {{{"malformed"}, v(c.malformed)},
          {{"own_packet"}, v(c.own_packets)},
          {{"off_link"}, v(c.off_link)},
          {{"bad_source"}, v(c.bad_source)},
          {{"rate_limited"}, v(c.rate_limited)},
          {{"new_source_limited"}, v(c.new_source_limited)},
          {{"unresolved_neighbour"}, v(c.unresolved_neighbour)},
          {{"send_queue_full"}, v(c.send_queue_full)}};
}

responder_guard::responder_guard(settings s, segment_drop_counters& counters)
    : cookie_(s.cookie),
      unicast_networks_(std::move(s.unicast_networks)),
      counters_(counters), limiter_({s.rate_limit, s.new_source_rate}) {}

responder_guard::verdict responder_guard::admit(std::optional<std::uint64_t> sender_cookie,
                                                const boost::asio::ip::udp::endpoint& source,
                                                const network_interface* arrival,
                                                std::chrono::steady_clock::time_point now) {
  if (!sender_cookie) {
    ++counters_.malformed;
    return verdict::malformed;
  }
  if (*sender_cookie == cookie_) {
    ++counters_.own_packets;
    return verdict::own_packet;
  }
  if (arrival == nullptr) {
    ++counters_.off_link;
    return verdict::off_link;
  }
  if (!is_unicast_sender(source, *arrival)) {
    ++counters_.bad_source;
    return verdict::bad_source;
  }
  if (!arrival->is_on_link(source.address()) && !unicast_networks_.contains(source.address())) {
    ++counters_.off_link;
    return verdict::off_link;
  }
  switch (limiter_.admit(source.address(), arrival->index, now)) {
    case source_rate_limiter::verdict::admitted:
      return verdict::admitted;
    case source_rate_limiter::verdict::source_over_rate:
      ++counters_.rate_limited;
      return verdict::source_over_rate;
    case source_rate_limiter::verdict::newcomers_over_rate:
      ++counters_.new_source_limited;
      return verdict::newcomers_over_rate;
  }
  return verdict::admitted;
}

void responder_guard::update(std::uint32_t rate_limit, std::uint32_t new_source_rate) noexcept {
  limiter_.update({rate_limit, new_source_rate});
}

}  // namespace lanrelay
