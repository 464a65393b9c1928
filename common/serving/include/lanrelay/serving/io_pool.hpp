#pragma once

// Event loops for a server's connections, one thread each, like nginx's worker processes. Every
// handler of a connection runs on the one thread of the io_context it was given, so nothing on its
// path wakes another thread, takes a strand, or hands the connection to another core between a
// readiness event and the write it allows (with one io_context run by several threads, each
// event woke a second thread: a futex and a context switch per request, several per readiness
// wait of a large transfer; docs/performance.md).
//
// Thread safety: next() from any thread. Objects created on an executor from next() may be
// posted to from any thread; their handlers run on that loop's thread only.
//
// Lifetime: the loops run from construction until stop() (or the destructor), whether or not they
// have work. stop() ends them at once, joins the threads and destroys what was left pending (a
// connection's coroutine frame included): call it before anything those frames refer to is
// destroyed, from a thread that is not one of the loops.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

namespace lanrelay {

class io_pool {
 public:
  explicit io_pool(unsigned threads);  // at least one
  ~io_pool();
  io_pool(const io_pool&) = delete;
  io_pool& operator=(const io_pool&) = delete;

  // The loops in turn. Not after stop().
  boost::asio::any_io_executor next() noexcept;
  unsigned size() const noexcept { return static_cast<unsigned>(loops_.size()); }
  // Idempotent.
  void stop();

 private:
  struct loop {
    loop() : context(1), guard(boost::asio::make_work_guard(context)) {}
    boost::asio::io_context context;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard;
    std::thread thread;
  };
  std::vector<std::unique_ptr<loop>> loops_;
  std::atomic<unsigned> next_{0};
};

}  // namespace lanrelay
