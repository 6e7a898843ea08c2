#include "webhookdb/testing/capturing_logger.hpp"
#include "webhookdb/testing/recording_job_queue.hpp"
#include "webhookdb/testing/recording_progress_sink.hpp"

namespace webhookdb::testing {

void CapturingLogger::log(LogLevel level, std::string_view message) {
  std::lock_guard lock(mutex_);
  entries_.push_back(LogLine{level, std::string(message)});
}

std::vector<LogLine> CapturingLogger::entries() const {
  std::lock_guard lock(mutex_);
  return entries_;
}

std::vector<std::string> CapturingLogger::lines() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& e : entries_) out.push_back(std::string(to_string(e.level)) + " " + e.message);
  return out;
}

bool CapturingLogger::contains(std::string_view text) const {
  std::lock_guard lock(mutex_);
  for (const auto& e : entries_) {
    if (e.message.find(text) != std::string::npos) return true;
  }
  return false;
}

std::string CapturingLogger::text() const {
  std::string out;
  for (const auto& line : lines()) {
    out += line;
    out += '\n';
  }
  return out;
}

void CapturingLogger::clear() {
  std::lock_guard lock(mutex_);
  entries_.clear();
}

void RecordingProgressSink::on_progress(const BackfillProgress& progress) {
  std::lock_guard lock(mutex_);
  events_.push_back(progress);
}

std::vector<BackfillProgress> RecordingProgressSink::events() const {
  std::lock_guard lock(mutex_);
  return events_;
}

std::optional<BackfillProgress> RecordingProgressSink::last(const std::string& backfiller) const {
  std::lock_guard lock(mutex_);
  for (auto it = events_.rbegin(); it != events_.rend(); ++it) {
    if (backfiller.empty() || it->backfiller == backfiller) return *it;
  }
  return std::nullopt;
}

void RecordingProgressSink::clear() {
  std::lock_guard lock(mutex_);
  events_.clear();
}

void RecordingJobQueue::enqueue(std::int64_t job_id, std::optional<Timestamp> run_at) {
  std::lock_guard lock(mutex_);
  entries_.push_back(EnqueuedJob{job_id, run_at});
}

std::vector<EnqueuedJob> RecordingJobQueue::entries() const {
  std::lock_guard lock(mutex_);
  return entries_;
}

std::vector<std::int64_t> RecordingJobQueue::job_ids() const {
  std::lock_guard lock(mutex_);
  std::vector<std::int64_t> out;
  out.reserve(entries_.size());
  for (const auto& e : entries_) out.push_back(e.job_id);
  return out;
}

void RecordingJobQueue::clear() {
  std::lock_guard lock(mutex_);
  entries_.clear();
}

}  // namespace webhookdb::testing
