#include "lanrelay/agent/offer_route.hpp"

#include "lanrelay/segment/interfaces.hpp"

#include <net/if.h>

namespace lanrelay::agent {
namespace {

std::string interface_name(unsigned index) {
  char name[IF_NAMESIZE] = {};
  if (index == 0 || ::if_indextoname(index, name) == nullptr) {
    return {};
  }
  return name;
}

}  // namespace

offer_route route_to(const candidate& c) {
  offer_route out;
  // The kernel reports a link-local sender with its interface as scope id; the arrival
  // interface says the same, and is what a receive without one falls back on.
  unsigned index = c.interface_index;
  if (index == 0 && c.from.address().is_v6()) {
    index = c.from.address().to_v6().scope_id();
  }
  out.address = with_arrival_zone(c.from.address(), index);
  out.interface = interface_name(index);
  if (out.address.is_v6() && out.address.to_v6().scope_id() != 0) {
    out.zone = out.interface.empty() ? std::to_string(out.address.to_v6().scope_id())
                                     : out.interface;
  }
  return out;
}

}  // namespace lanrelay::agent
