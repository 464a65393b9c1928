#include "lanrelay/proxyhelper/stats.hpp"

namespace lanrelay::proxyhelper {

void query_log::add(query_record record) {
  std::lock_guard lock(mutex_);
  records_.push_back(std::move(record));
  if (records_.size() > max_records) {
    records_.pop_front();
  }
}

std::vector<query_record> query_log::recent() const {
  std::lock_guard lock(mutex_);
  return {records_.rbegin(), records_.rend()};
}

}  // namespace lanrelay::proxyhelper
