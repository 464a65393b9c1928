#include "lanrelay/serving/io_pool.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <algorithm>

namespace lanrelay {

io_pool::io_pool(unsigned threads) {
  const unsigned count = std::max(threads, 1U);
  loops_.reserve(count);
  for (unsigned i = 0; i < count; ++i) {
    loops_.push_back(std::make_unique<loop>());
    // The reactor (an epoll, an eventfd and a timerfd) now, not at the first accepted connection,
    // when descriptors may have run out: the accept loop backs off then; a throw would end the
    // process.
    boost::asio::ip::tcp::socket reactor_now(loops_.back()->context);
  }
  for (auto& l : loops_) {
    l->thread = std::thread([&context = l->context] { context.run(); });
  }
}

io_pool::~io_pool() { stop(); }

boost::asio::any_io_executor io_pool::next() noexcept {
  const unsigned i = next_.fetch_add(1, std::memory_order_relaxed) % loops_.size();
  return loops_[i]->context.get_executor();
}

void io_pool::stop() {
  for (auto& l : loops_) {
    l->guard.reset();
    l->context.stop();
  }
  for (auto& l : loops_) {
    if (l->thread.joinable()) {
      l->thread.join();
    }
  }
  loops_.clear();  // each io_context destroys what was left pending in it
}

}  // namespace lanrelay
