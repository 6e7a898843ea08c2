#include "admin/admin.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "webhookdb/backfill_window.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/pg/config.hpp"
#include "webhookdb/pg/connection_pool.hpp"
#include "webhookdb/pg/job_control.hpp"
#include "webhookdb/pg/job_queue.hpp"
#include "webhookdb/pg/job_store.hpp"
#include "webhookdb/pg/webhook_inbox.hpp"

namespace webhookdb::admin {
namespace {

using nlohmann::json;

// What the command line asked for.
struct Settings {
  std::string database_url;
  std::string url_file;
  std::string schema = "public";
  bool json_output = false;
  // jobs
  std::string state;
  std::string integration;
  std::size_t limit = 50;
  // job, cancel, enqueue, retry, inbox retry
  std::vector<std::int64_t> ids;
  bool all = false;
  // backfill
  bool incremental = false;
  std::string from;
  std::string to;
  bool fresh = false;
};

// --- never print the database URL ---

std::string replace_all(std::string text, const std::string& needle, const std::string& with) {
  if (needle.size() < 3) return text;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + with.size())) {
    text.replace(pos, needle.size(), with);
  }
  return text;
}

// The password of a postgresql:// URL or a key=value conninfo, as written.
std::string password_of(const std::string& url) {
  if (const auto scheme = url.find("://"); scheme != std::string::npos) {
    const auto at = url.find('@', scheme + 3);
    const auto colon = url.find(':', scheme + 3);
    if (at != std::string::npos && colon != std::string::npos && colon < at) {
      return url.substr(colon + 1, at - colon - 1);
    }
  }
  if (const auto key = url.find("password="); key != std::string::npos) {
    const auto end = url.find(' ', key);
    return url.substr(key + 9, end == std::string::npos ? std::string::npos : end - key - 9);
  }
  return "";
}

// Every text printed goes through here.
std::string scrubbed(std::string text, const std::string& url) {
  if (url.empty()) return text;
  text = replace_all(std::move(text), url, "<database url>");
  // The pool's errors name the URL with its password redacted: not shown either.
  text = replace_all(std::move(text), pg::redact_connection_string(url), "<database url>");
  return replace_all(std::move(text), password_of(url), "REDACTED");
}

// --- output ---

std::string ts(const std::optional<Timestamp>& t) {
  return t ? format_timestamp(*t) : "";
}

json ts_json(const std::optional<Timestamp>& t) {
  return t ? json(format_timestamp(*t)) : json(nullptr);
}

std::string rate(double per_second) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(per_second < 10 ? 1 : 0) << per_second;
  return s.str();
}

// A plain-text table: columns as wide as their widest cell.
class Table {
 public:
  explicit Table(std::vector<std::string> headers) : rows_{std::move(headers)} {}
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void print(std::ostream& out) const {
    std::vector<std::size_t> width(rows_.front().size(), 0);
    for (const auto& row : rows_) {
      for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
    }
    for (const auto& row : rows_) {
      std::string line;
      for (std::size_t i = 0; i < row.size(); ++i) {
        line += row[i];
        if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
      }
      out << line << "\n";
    }
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

std::string one_line(std::string text, std::size_t max) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  if (text.size() > max) text = text.substr(0, max - 3) + "...";
  return text;
}

json to_json(const pg::IntegrationSummary& s) {
  return {{"id", s.id},
          {"opaque_id", s.opaque_id},
          {"service_name", s.service_name},
          {"table_name", s.table_name},
          {"api_url", s.api_url},
          {"depends_on", s.depends_on ? json(*s.depends_on) : json(nullptr)},
          {"last_backfilled_at", ts_json(s.last_backfilled_at)},
          {"has_backfill_credentials", s.has_backfill_credentials}};
}

std::string kind(const pg::JobSummary& j) {
  std::string k = j.incremental ? "incremental" : "full";
  if (auto window = backfill_window(j.criteria)) {
    k += " window [" + (window->from.is_null() ? "" : window->from.dump()) + ", " +
         (window->to.is_null() ? "" : window->to.dump()) + ")";
  }
  return k;
}

json to_json(const pg::JobSummary& j) {
  return {{"id", j.job_id},
          {"opaque_id", j.opaque_id},
          {"integration_id", j.integration_id},
          {"integration", j.integration},
          {"service_name", j.service_name},
          {"parent_job_id", j.parent_job_id ? json(*j.parent_job_id) : json(nullptr)},
          {"incremental", j.incremental},
          {"criteria", j.criteria},
          {"state", j.state},
          {"cancel_requested", j.cancel_requested},
          {"attempts", j.attempts},
          {"retries_left", j.retries_left ? json(*j.retries_left) : json(nullptr)},
          {"worker", j.lease_owner.empty() ? json(nullptr) : json(j.lease_owner)},
          {"lease_expires_at", ts_json(j.lease_expires_at)},
          {"run_at", ts_json(j.run_at)},
          {"last_error", j.last_error.empty() ? json(nullptr) : json(j.last_error)},
          {"created_at", format_timestamp(j.created_at)},
          {"started_at", ts_json(j.started_at)},
          {"finished_at", ts_json(j.finished_at)},
          {"progress",
           {{"pages", j.pages},
            {"items", j.items},
            {"rows_written", j.rows_written},
            {"retries", j.retries},
            {"bytes", j.bytes},
            {"elapsed_ms", j.elapsed.count()},
            {"rows_per_second", j.rows_per_second()},
            {"pages_per_second", j.pages_per_second()},
            {"updated_at", ts_json(j.progress_at)}}}};
}

void print_jobs(const std::vector<pg::JobSummary>& jobs, std::ostream& out) {
  Table t({"ID", "STATE", "INTEGRATION", "KIND", "PAGES", "ROWS", "ROWS/S", "RETRIES", "ATTEMPTS", "WORKER",
           "LAST ERROR"});
  for (const auto& j : jobs) {
    t.add({std::to_string(j.job_id), j.state + (j.cancel_requested ? " (cancelling)" : ""), j.integration,
           kind(j), std::to_string(j.pages), std::to_string(j.rows_written), rate(j.rows_per_second()),
           std::to_string(j.retries), std::to_string(j.attempts), j.lease_owner, one_line(j.last_error, 60)});
  }
  t.print(out);
}

// --- the stores, opened on first use ---

class Session {
 public:
  explicit Session(const Settings& s) : settings_(s) {}

  pg::ConnectionPool& pool() {
    if (!pool_) {
      pg::Config config;
      config.url = settings_.database_url;
      config.schema = settings_.schema;
      config.pool_size = 2;
      config.application_name = "webhookdb admin";
      pool_ = std::make_shared<pg::ConnectionPool>(config);
    }
    return *pool_;
  }
  std::shared_ptr<pg::ConnectionPool> shared_pool() {
    pool();
    return pool_;
  }
  pg::PgJobQueue& queue() {
    if (!queue_) queue_ = std::make_shared<pg::PgJobQueue>(shared_pool());
    return *queue_;
  }
  pg::PgJobControl& control() {
    queue();
    if (!control_) control_ = std::make_unique<pg::PgJobControl>(queue_);
    return *control_;
  }
  pg::PgJobStore& jobs() {
    if (!jobs_) jobs_ = std::make_unique<pg::PgJobStore>(shared_pool());
    return *jobs_;
  }
  pg::PgWebhookInbox& inbox() {
    if (!inbox_) inbox_ = std::make_unique<pg::PgWebhookInbox>(shared_pool());
    return *inbox_;
  }
  [[nodiscard]] bool json_output() const { return settings_.json_output; }

 private:
  const Settings& settings_;
  std::shared_ptr<pg::ConnectionPool> pool_;
  std::shared_ptr<pg::PgJobQueue> queue_;
  std::unique_ptr<pg::PgJobControl> control_;
  std::unique_ptr<pg::PgJobStore> jobs_;
  std::unique_ptr<pg::PgWebhookInbox> inbox_;
};

// A command failed in a way the operator acts on (exit 1).
class CommandFailed : public Error {
 public:
  using Error::Error;
};

pg::IntegrationSummary find_integration(Session& db, const std::string& id) {
  auto s = db.control().integration(id);
  if (!s) throw CommandFailed("no integration " + id + " (give its id or its opaque id svi_...)");
  return *s;
}

// --- commands ---

int integrations_cmd(Session& db, std::ostream& out) {
  const auto all = db.control().integrations();
  if (db.json_output()) {
    json a = json::array();
    for (const auto& s : all) a.push_back(to_json(s));
    out << a.dump(2) << "\n";
    return 0;
  }
  Table t({"ID", "OPAQUE ID", "SERVICE", "TABLE", "DEPENDS ON", "LAST BACKFILLED", "CREDENTIALS"});
  for (const auto& s : all) {
    t.add({std::to_string(s.id), s.opaque_id, s.service_name, s.table_name,
           s.depends_on ? std::to_string(*s.depends_on) : "", ts(s.last_backfilled_at),
           s.has_backfill_credentials ? "yes" : "no"});
  }
  t.print(out);
  return 0;
}

int integration_cmd(Session& db, const Settings& s, std::ostream& out) {
  const auto si = find_integration(db, s.integration);
  pg::JobFilter filter;
  filter.integration_id = si.id;
  filter.limit = s.limit;
  const auto jobs = db.control().jobs(filter);
  if (db.json_output()) {
    json j = to_json(si);
    j["jobs"] = json::array();
    for (const auto& job : jobs) j["jobs"].push_back(to_json(job));
    out << j.dump(2) << "\n";
    return 0;
  }
  out << "integration " << si.id << " " << si.opaque_id << "\n  service          " << si.service_name
      << "\n  table            " << si.table_name << "\n  api url          " << si.api_url
      << "\n  depends on       " << (si.depends_on ? std::to_string(*si.depends_on) : "-")
      << "\n  last backfilled  " << (si.last_backfilled_at ? ts(si.last_backfilled_at) : "never")
      << "\n  credentials      " << (si.has_backfill_credentials ? "yes" : "no") << "\n\n";
  print_jobs(jobs, out);
  return 0;
}

int jobs_cmd(Session& db, const Settings& s, std::ostream& out) {
  pg::JobFilter filter;
  if (!s.state.empty()) filter.state = s.state;
  if (!s.integration.empty()) filter.integration_id = find_integration(db, s.integration).id;
  filter.limit = s.limit;
  const auto jobs = db.control().jobs(filter);
  if (db.json_output()) {
    json a = json::array();
    for (const auto& j : jobs) a.push_back(to_json(j));
    out << a.dump(2) << "\n";
    return 0;
  }
  print_jobs(jobs, out);
  return 0;
}

int job_cmd(Session& db, std::int64_t id, std::ostream& out) {
  const auto job = db.control().job(id);
  if (!job) throw CommandFailed("no job " + std::to_string(id));
  const auto parts = db.control().progress(id);
  if (db.json_output()) {
    json j = to_json(*job);
    j["backfillers"] = json::array();
    for (const auto& p : parts) {
      j["backfillers"].push_back({{"backfiller", p.backfiller},
                                  {"worker", p.owner},
                                  {"pages", p.pages},
                                  {"items", p.items},
                                  {"rows_written", p.rows_written},
                                  {"retries", p.retries},
                                  {"bytes", p.bytes},
                                  {"elapsed_ms", p.elapsed.count()},
                                  {"done", p.done},
                                  {"updated_at", format_timestamp(p.updated_at)}});
    }
    out << j.dump(2) << "\n";
    return 0;
  }
  const auto& j = *job;
  out << "job " << j.job_id << " " << j.opaque_id << " (" << kind(j) << ") of integration "
      << j.integration_id << " " << j.integration << " (" << j.service_name << ")\n"
      << "  state        " << j.state << (j.cancel_requested ? ", cancel requested" : "") << "\n"
      << "  worker       " << (j.lease_owner.empty() ? "-" : j.lease_owner)
      << (j.lease_expires_at ? " (lease until " + ts(j.lease_expires_at) + ")" : "") << "\n"
      << "  attempts     " << j.attempts
      << (j.retries_left ? ", " + std::to_string(*j.retries_left) + " retries left" : "") << "\n"
      << "  created      " << format_timestamp(j.created_at) << "\n  started      " << ts(j.started_at)
      << "\n  finished     " << ts(j.finished_at) << "\n"
      << "  progress     " << j.pages << " pages, " << j.items << " items, " << j.rows_written << " rows, "
      << j.retries << " retries in " << j.elapsed.count() << " ms (" << rate(j.rows_per_second())
      << " rows/s, " << rate(j.pages_per_second()) << " pages/s)"
      << (j.progress_at ? ", as of " + ts(j.progress_at) : "") << "\n  last error   "
      << (j.last_error.empty() ? "-" : j.last_error) << "\n";
  if (!parts.empty()) {
    out << "\n";
    Table t({"BACKFILLER", "PAGES", "ROWS", "RETRIES", "ELAPSED MS", "DONE", "WORKER", "UPDATED"});
    for (const auto& p : parts) {
      t.add({p.backfiller, std::to_string(p.pages), std::to_string(p.rows_written), std::to_string(p.retries),
             std::to_string(p.elapsed.count()), p.done ? "yes" : "no", p.owner,
             format_timestamp(p.updated_at)});
    }
    t.print(out);
  }
  return 0;
}

json backfill_criteria(const Settings& s) {
  json criteria = json::object();
  if (s.from.empty() && s.to.empty()) return criteria;
  std::optional<Timestamp> from;
  std::optional<Timestamp> to;
  if (!s.from.empty()) from = timestamp_from_text(s.from);
  if (!s.to.empty()) to = timestamp_from_text(s.to);
  criteria = with_window(criteria, BackfillWindow::time_range(from, to));
  (void)backfill_window(criteria);  // refuses from >= to, naming the field
  return criteria;
}

void print_action(Session& db, std::ostream& out, const std::string& action, std::int64_t job_id,
                  const std::string& text) {
  if (db.json_output()) {
    json j = {{"action", action}, {"job_id", job_id}};
    if (auto job = db.control().job(job_id)) j["job"] = to_json(*job);
    out << j.dump(2) << "\n";
  } else {
    out << text << "\n";
  }
}

int backfill_cmd(Session& db, const Settings& s, std::ostream& out) {
  const auto si = find_integration(db, s.integration);
  const json criteria = backfill_criteria(s);
  if (!s.fresh) {
    // The same backfill asked again: one unfinished already exists.
    if (auto job = db.control().unfinished_job(si.id, s.incremental, criteria)) {
      const auto id = job->job_id;
      if (job->state == "queued" || job->state == "running") {
        print_action(db, out, "already_" + job->state, id,
                     "job " + std::to_string(id) + " (" + kind(*job) + ") is already " + job->state);
        return 0;
      }
      db.queue().enqueue(id);
      print_action(db, out, "resumed", id,
                   "job " + std::to_string(id) + " (" + kind(*job) + ", " + job->state +
                       ") queued again: it resumes at its checkpoints");
      return 0;
    }
  }
  auto integration = db.jobs().find_integration(si.id);
  if (!integration) throw CommandFailed("integration " + std::to_string(si.id) + " is gone");
  const auto job = db.jobs().create_recursive(*integration, s.incremental, criteria);
  db.queue().enqueue(job.id);
  print_action(db, out, "enqueued", job.id, "job " + std::to_string(job.id) + " queued");
  return 0;
}

int cancel_cmd(Session& db, std::int64_t id, std::ostream& out) {
  const char* user = std::getenv("USER");
  const auto result = db.control().request_cancel(id, user != nullptr ? user : "webhookdb admin");
  switch (result) {
    case pg::CancelResult::cancelled:
      print_action(db, out, "cancelled", id, "job " + std::to_string(id) + " was queued: cancelled");
      return 0;
    case pg::CancelResult::requested:
      print_action(
          db, out, "cancel_requested", id,
          "job " + std::to_string(id) + " is running: its worker was asked to stop (checkpoints kept)");
      return 0;
    case pg::CancelResult::not_running:
      throw CommandFailed("job " + std::to_string(id) + " is not queued or running: nothing to cancel");
    case pg::CancelResult::not_found:
      break;
  }
  throw CommandFailed("job " + std::to_string(id) + " is not in the queue");
}

int enqueue_cmd(Session& db, std::int64_t id, std::ostream& out) {
  if (!db.control().job(id)) throw CommandFailed("no job " + std::to_string(id));
  db.queue().enqueue(id);
  print_action(
      db, out, "enqueued", id,
      "job " + std::to_string(id) + " queued (a running job is left alone; it resumes at its checkpoints)");
  return 0;
}

int retry_cmd(Session& db, const Settings& s, std::ostream& out) {
  std::vector<std::int64_t> ids = s.ids;
  if (s.all) {
    for (const auto& e : db.queue().failed()) ids.push_back(e.job_id);
  }
  if (ids.empty() && !s.all) throw InvalidPrecondition("retry needs job ids or --all-failed");
  json done = json::array();
  int code = 0;
  for (const auto id : ids) {
    if (db.queue().requeue_failed(id)) {
      done.push_back(id);
      if (!db.json_output()) out << "job " << id << " queued again\n";
    } else {
      code = 1;
      if (!db.json_output()) out << "job " << id << " is not failed: left alone\n";
    }
  }
  if (db.json_output()) out << json{{"action", "retried"}, {"job_ids", done}}.dump(2) << "\n";
  return code;
}

int inbox_failed_cmd(Session& db, const Settings& s, std::ostream& out) {
  auto failed = db.inbox().failed();
  if (failed.size() > s.limit) failed.resize(s.limit);
  if (db.json_output()) {
    json a = json::array();
    for (const auto& e : failed) {
      a.push_back({{"id", e.id},
                   {"integration", e.opaque_id},
                   {"attempts", e.attempts},
                   {"received_at", format_timestamp(e.received_at)},
                   {"failed_at", ts_json(e.failed_at)},
                   {"last_error", e.last_error},
                   {"body_bytes", e.body.size()}});
    }
    out << a.dump(2) << "\n";
    return 0;
  }
  Table t({"ID", "INTEGRATION", "ATTEMPTS", "RECEIVED", "FAILED", "BYTES", "LAST ERROR"});
  for (const auto& e : failed) {
    t.add({std::to_string(e.id), e.opaque_id, std::to_string(e.attempts), format_timestamp(e.received_at),
           ts(e.failed_at), std::to_string(e.body.size()), one_line(e.last_error, 60)});
  }
  t.print(out);
  return 0;
}

int inbox_retry_cmd(Session& db, const Settings& s, std::ostream& out) {
  if (s.all) {
    const auto n = db.inbox().requeue_all_failed();
    if (db.json_output()) {
      out << json{{"action", "requeued"}, {"count", n}}.dump(2) << "\n";
    } else {
      out << n << " failed webhook(s) queued again\n";
    }
    return 0;
  }
  if (s.ids.empty()) throw InvalidPrecondition("inbox retry needs entry ids or --all");
  json done = json::array();
  int code = 0;
  for (const auto id : s.ids) {
    const bool queued = db.inbox().requeue_failed(id);
    if (queued) done.push_back(id);
    code = queued ? code : 1;
    if (!db.json_output())
      out << "webhook " << id << (queued ? " queued again\n" : " is not failed: left alone\n");
  }
  if (db.json_output()) out << json{{"action", "requeued"}, {"ids", done}}.dump(2) << "\n";
  return code;
}

// --- the command line ---

std::string read_url_file(const std::string& path) {
  std::ifstream in(path);
  std::string url;
  if (!in || !std::getline(in, url)) throw InvalidPrecondition("cannot read --database-url-file " + path);
  while (!url.empty() && std::isspace(static_cast<unsigned char>(url.back())) != 0) url.pop_back();
  if (url.empty()) throw InvalidPrecondition("--database-url-file " + path + " is empty");
  return url;
}

// CLI11's messages may quote a value (the URL, put in the wrong place):
// only the kind of error and the option it names are kept.
std::string parse_error_text(const CLI::ParseError& e) {
  const std::string what = e.what();
  const std::string option = what.substr(0, what.find(':'));
  const bool named =
      option.rfind("--", 0) == 0 && option.find(' ') == std::string::npos && option.size() < 40;
  return "cannot read the command line (" + e.get_name() + (named ? " at " + option : "") +
         "); see webhookdb --help";
}

struct Commands {
  CLI::App* integrations = nullptr;
  CLI::App* integration = nullptr;
  CLI::App* jobs = nullptr;
  CLI::App* job = nullptr;
  CLI::App* backfill = nullptr;
  CLI::App* cancel = nullptr;
  CLI::App* enqueue = nullptr;
  CLI::App* retry = nullptr;
  CLI::App* inbox_failed = nullptr;
  CLI::App* inbox_retry = nullptr;
};

Commands define_commands(CLI::App& app, Settings& s) {
  Commands c;
  c.integrations = app.add_subcommand("integrations", "list the service integrations (no secrets)");
  c.integration = app.add_subcommand("integration", "show one integration and its latest jobs");
  c.integration->add_option("INTEGRATION", s.integration, "id or opaque id (svi_...)")->required();
  c.integration->add_option("--limit", s.limit, "jobs shown")->check(CLI::Range(1, 100000));
  c.jobs = app.add_subcommand("jobs", "list backfill jobs, newest first, with state, progress and worker");
  c.jobs->add_option("--state", s.state, "queue state")
      ->check(CLI::IsMember({"queued", "running", "done", "failed", "cancelled", "unqueued"}));
  c.jobs->add_option("--integration", s.integration, "id or opaque id");
  c.jobs->add_option("--limit", s.limit, "at most this many")->check(CLI::Range(1, 100000));
  c.job =
      app.add_subcommand("job", "show one job: state, progress per backfiller, rates, worker, last error");
  c.job->add_option("JOB", s.ids, "job id")->required()->expected(1);
  c.backfill = app.add_subcommand("backfill",
                                  "enqueue a backfill of an integration (full by default); the same "
                                  "backfill unfinished (cancelled) is resumed instead");
  c.backfill->add_option("INTEGRATION", s.integration, "id or opaque id")->required();
  c.backfill->add_flag("--incremental", s.incremental,
                       "only what changed since the last incremental backfill");
  c.backfill->add_option("--from", s.from, "window start (ISO-8601, inclusive)");
  c.backfill->add_option("--to", s.to, "window end (ISO-8601, exclusive)");
  c.backfill->add_flag("--new", s.fresh, "always a new job, even when the same backfill is unfinished");
  c.cancel = app.add_subcommand("cancel",
                                "cancel a job: queued at once, running within a second (its "
                                "worker stops at a page boundary and keeps its checkpoints)");
  c.cancel->add_option("JOB", s.ids, "job id")->required()->expected(1);
  c.enqueue =
      app.add_subcommand("enqueue", "queue a job again (cancelled, done): it resumes at its checkpoints");
  c.enqueue->add_option("JOB", s.ids, "job id")->required()->expected(1);
  c.retry = app.add_subcommand("retry", "queue failed jobs again");
  c.retry->add_option("JOB", s.ids, "job ids");
  c.retry->add_flag("--all-failed", s.all, "every failed job");
  auto* inbox = app.add_subcommand("inbox", "the webhook inbox");
  inbox->require_subcommand(1);
  c.inbox_failed = inbox->add_subcommand("failed", "list webhooks that failed for good");
  c.inbox_failed->add_option("--limit", s.limit, "at most this many")->check(CLI::Range(1, 100000));
  c.inbox_retry = inbox->add_subcommand("retry", "queue failed webhooks again");
  c.inbox_retry->add_option("ID", s.ids, "inbox entry ids");
  c.inbox_retry->add_flag("--all", s.all, "every failed webhook");
  app.require_subcommand(1);
  return c;
}

int dispatch(const Commands& c, Session& db, const Settings& s, std::ostream& out) {
  if (c.integrations->parsed()) return integrations_cmd(db, out);
  if (c.integration->parsed()) return integration_cmd(db, s, out);
  if (c.jobs->parsed()) return jobs_cmd(db, s, out);
  if (c.job->parsed()) return job_cmd(db, s.ids.at(0), out);
  if (c.backfill->parsed()) return backfill_cmd(db, s, out);
  if (c.cancel->parsed()) return cancel_cmd(db, s.ids.at(0), out);
  if (c.enqueue->parsed()) return enqueue_cmd(db, s.ids.at(0), out);
  if (c.retry->parsed()) return retry_cmd(db, s, out);
  if (c.inbox_failed->parsed()) return inbox_failed_cmd(db, s, out);
  if (c.inbox_retry->parsed()) return inbox_retry_cmd(db, s, out);
  throw InvalidPrecondition("no command given; see webhookdb --help");
}

}  // namespace

// NOLINTNEXTLINE(bugprone-easily-swappable-parameters): stdout then stderr, as main() passes them
int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Settings s;
  CLI::App app{
      "webhookdb: operate the workers' PostgreSQL (integrations, jobs, backfills, cancels, retries, "
      "the webhook inbox)",
      "webhookdb"};
  app.add_option(
         "--database-url", s.database_url,
         "PostgreSQL URL (default: the environment variable WEBHOOKDB_DATABASE_URL, which ps does not show)")
      ->envname("WEBHOOKDB_DATABASE_URL");
  auto* file_option =
      app.add_option("--database-url-file", s.url_file, "read the URL from this file's first line");
  app.add_option("--schema", s.schema, "schema of webhookdb's own tables (default public)");
  app.add_flag("--json", s.json_output, "JSON for scripts instead of tables");
  const Commands commands = define_commands(app, s);
  // The URL may be anywhere in the command line or the environment: every
  // message below is scrubbed of it (url_for_scrub is what was given).
  std::string url_for_scrub;
  bool url_on_command_line = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--database-url" && i + 1 < args.size()) url_for_scrub = args[i + 1];
    if (args[i].rfind("--database-url=", 0) == 0) url_for_scrub = args[i].substr(15);
    url_on_command_line = url_on_command_line || (args[i].rfind("--database-url", 0) == 0 &&
                                                  args[i].rfind("--database-url-file", 0) != 0);
  }
  if (url_for_scrub.empty()) {
    if (const char* env = std::getenv("WEBHOOKDB_DATABASE_URL")) url_for_scrub = env;
  }
  std::ostringstream buffer;
  int code = 0;
  try {
    try {
      app.parse(std::vector<std::string>(args.rbegin(), args.rend()));  // CLI11 takes them reversed
    } catch (const CLI::CallForHelp&) {
      buffer << app.help();
      out << scrubbed(buffer.str(), url_for_scrub);
      return 0;
    } catch (const CLI::ParseError& e) {
      throw InvalidPrecondition(parse_error_text(e));
    }
    if (file_option->count() > 0) {
      // The command line decides; the environment only fills what it left out.
      if (url_on_command_line)
        throw InvalidPrecondition("give --database-url or --database-url-file, not both");
      s.database_url = read_url_file(s.url_file);
      url_for_scrub = s.database_url;
    }
    if (s.database_url.empty()) {
      throw InvalidPrecondition(
          "no database URL: give WEBHOOKDB_DATABASE_URL, --database-url-file or --database-url");
    }
    url_for_scrub = s.database_url;
    Session db(s);
    try {
      code = dispatch(commands, db, s, buffer);
    } catch (const InvalidPrecondition&) {
      throw;
    } catch (const InvalidInput& e) {
      throw InvalidPrecondition(e.what());
    }
  } catch (const InvalidPrecondition& e) {
    out << scrubbed(buffer.str(), url_for_scrub);
    err << "webhookdb: " << scrubbed(e.what(), url_for_scrub) << "\n";
    return 2;
  } catch (const std::exception& e) {
    out << scrubbed(buffer.str(), url_for_scrub);
    err << "webhookdb: " << scrubbed(e.what(), url_for_scrub) << "\n";
    return 1;
  }
  out << scrubbed(buffer.str(), url_for_scrub);
  return code;
}

}  // namespace webhookdb::admin
