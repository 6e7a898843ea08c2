#include "webhookdb/memory/memory_replica_store.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <utility>

#include "webhookdb/errors.hpp"
#include "webhookdb/json_text.hpp"
#include "webhookdb/time.hpp"

namespace webhookdb::memory {
namespace {

using nlohmann::json;

// Remote keys are ordered like a SQL key column: numbers numerically, text
// by bytes (the C collation); mixed kinds (never in one real table) by kind.
struct KeyLess {
  bool operator()(const json& a, const json& b) const {
    const int ra = rank(a);
    const int rb = rank(b);
    if (ra != rb) return ra < rb;
    if (a.is_number() && b.is_number()) {
      if (a.is_number_integer() && b.is_number_integer()) {
        if (a.is_number_unsigned() || b.is_number_unsigned()) {
          if (a.is_number_unsigned() && b.is_number_unsigned()) return a.get<std::uint64_t>() < b.get<std::uint64_t>();
          // One of them is signed: a negative signed value is always smaller.
          if (a.is_number_unsigned()) {
            const auto bv = b.get<std::int64_t>();
            return bv >= 0 && a.get<std::uint64_t>() < static_cast<std::uint64_t>(bv);
          }
          const auto av = a.get<std::int64_t>();
          return av < 0 || static_cast<std::uint64_t>(av) < b.get<std::uint64_t>();
        }
        return a.get<std::int64_t>() < b.get<std::int64_t>();
      }
      return a.get<double>() < b.get<double>();
    }
    if (a.is_string()) return a.get_ref<const std::string&>() < b.get_ref<const std::string&>();
    return a.dump() < b.dump();
  }
  static int rank(const json& j) {
    if (j.is_number()) return 0;
    if (j.is_string()) return 1;
    return 2;
  }
};

struct StoredRow {
  std::int64_t pk = 0;
  // The upsert that last wrote the row or marked it seen (SeenMarks), for the sweep.
  std::uint64_t seen = 0;
  json key;
  std::map<std::string, json> columns;
  json enrichment;
  json data;
};

struct Table {
  TableSpec spec;
  std::set<std::string> column_names;
  std::map<json, StoredRow, KeyLess> rows;
  // Hard deletes (TableSpec::deletes): the deletions of removed rows, which
  // the update rule judges a later row against.
  std::map<json, StoredRow, KeyLess> tombstones;
  std::int64_t next_pk = 1;
};

// What one input row does to the table.
enum class Write { put_row, remove_row };

StoredRow new_stored_row(std::int64_t pk, const Row& incoming, const TableSpec& spec) {
  StoredRow out;
  out.pk = pk;
  out.key = incoming.key;
  for (std::size_t c = 0; c < spec.columns.size(); ++c) out.columns[spec.columns[c].name] = incoming.values[c];
  return out;
}

std::string table_id(const TableSpec& spec) { return spec.schema + "." + spec.table; }

Row to_row(const StoredRow& stored, const TableSpec& spec) {
  Row row;
  row.key = stored.key;
  row.values.reserve(spec.columns.size());
  for (const auto& column : spec.columns) {
    auto it = stored.columns.find(column.name);
    row.values.push_back(it == stored.columns.end() ? json(nullptr) : it->second);
  }
  row.enrichment = spec.enrichment ? stored.enrichment : json(nullptr);
  row.data = stored.data;
  return row;
}

// What PostgreSQL would store: no NUL characters in jsonb or text.
Row sanitized(const Row& row) {
  Row out;
  out.key = strip_nuls(row.key);
  out.values.reserve(row.values.size());
  for (const auto& v : row.values) out.values.push_back(strip_nuls(v));
  out.enrichment = strip_nuls(row.enrichment);
  out.data = strip_nuls(row.data);
  return out;
}

// Everything is checked before the table is touched: a batch is all or nothing.
void validate_rows(const TableSpec& spec, std::span<const Row> rows) {
  for (const auto& row : rows) {
    if (row.key.is_null()) throw InvalidInput("remote key is null", spec.remote_key.name);
    if (row.values.size() != spec.columns.size()) {
      throw InvalidInput("row has " + std::to_string(row.values.size()) + " values but the table has " +
                             std::to_string(spec.columns.size()) + " columns",
                         table_id(spec) + " key " + row.key.dump());
    }
  }
}

struct PlannedWrite {
  Write what;
  StoredRow row;
};

// What `incoming` does to the table under the update rule: nothing (nullopt),
// a row put, or (a hard deletion) a row removed behind a tombstone.
std::optional<PlannedWrite> plan_write(const Table& table, const TableSpec& spec, const UpsertOptions& options,
                                       const Row& incoming, std::int64_t& next_pk) {
  const auto deleted_at = spec.deletes == DeleteMode::hard ? spec.column_index(kDeletedAtColumn) : std::nullopt;
  const bool deleting = deleted_at && !incoming.values[*deleted_at].is_null();
  auto refused_against = [&](const StoredRow& stored) {
    return options.apply_update_rule && !spec.update_rule.allows(spec, to_row(stored, spec), incoming);
  };
  StoredRow out;
  auto existing = table.rows.find(incoming.key);
  if (existing == table.rows.end()) {
    if (deleted_at) {
      auto tomb = table.tombstones.find(incoming.key);
      if (tomb != table.tombstones.end() && refused_against(tomb->second)) {
        return std::nullopt;  // older than the deletion: never resurrected
      }
    }
    out = new_stored_row(next_pk++, incoming, spec);
  } else if (deleting) {
    if (refused_against(existing->second)) return std::nullopt;
    out = new_stored_row(existing->second.pk, incoming, spec);
  } else {
    if (refused_against(existing->second)) return std::nullopt;
    out = existing->second;
    for (std::size_t c = 0; c < spec.columns.size(); ++c) {
      const auto& column = spec.columns[c];
      const json& value = incoming.values[c];
      if (column.keeps_existing && out.columns.count(column.name) != 0) continue;
      if (column.skips_nil && value.is_null()) continue;
      out.columns[column.name] = value;
    }
  }
  if (spec.enrichment) out.enrichment = incoming.enrichment;
  out.data = incoming.data;
  return PlannedWrite{deleting ? Write::remove_row : Write::put_row, std::move(out)};
}

void commit_writes(Table& table, std::vector<PlannedWrite>& writes, std::uint64_t seq) {
  for (auto& [what, w] : writes) {
    json key = w.key;
    w.seen = seq;
    if (what == Write::remove_row) {
      table.rows.erase(key);
      table.tombstones.insert_or_assign(std::move(key), std::move(w));
    } else {
      table.tombstones.erase(key);
      table.rows.insert_or_assign(std::move(key), std::move(w));
    }
  }
}

// A sweeping job's mark: rows written or seen by upserts numbered from `mark` on are kept.
struct SweepMark {
  std::string table;
  std::uint64_t mark = 0;
};

// What the sweep does to one unseen live row; false when it leaves it alone.
bool sweep_row(Table& table, const TableSpec& spec, std::map<json, StoredRow, KeyLess>::iterator& it,
               const std::string& now) {
  const auto deleted_at = spec.column_index(kDeletedAtColumn);
  if (!deleted_at) return false;
  json& value = it->second.columns[spec.columns[*deleted_at].name];
  if (!value.is_null()) return false;  // already deleted
  value = now;
  if (spec.deletes == DeleteMode::hard) {
    json key = it->first;
    table.tombstones.insert_or_assign(std::move(key), std::move(it->second));
    it = table.rows.erase(it);
  } else {
    ++it;
  }
  return true;
}

}  // namespace

struct MemoryReplicaStore::State {
  mutable std::mutex mutex;
  // Numbers the upserts: a row's `seen` is the last one that wrote or saw it.
  std::uint64_t write_seq = 0;
  std::map<std::int64_t, SweepMark> sweep_runs;
  std::map<std::string, Table> tables;
  std::map<std::int64_t, std::map<std::string, Checkpoint>> checkpoints;
  int fail_remaining = 0;
  std::exception_ptr failure;
  std::function<void(const TableSpec&, std::span<const Row>)> before_upsert;
  std::size_t upsert_calls = 0;
  std::size_t rows_written = 0;
  std::size_t rows_changed = 0;
  std::size_t checkpoint_saves = 0;
  std::vector<UpsertCall> calls;

  Table& table(const TableSpec& spec) {
    auto it = tables.find(table_id(spec));
    if (it == tables.end()) {
      throw StoreError("table " + table_id(spec) + " does not exist (call create_table first)", false);
    }
    return it->second;
  }
};

MemoryReplicaStore::MemoryReplicaStore() : state_(std::make_unique<State>()) {}
MemoryReplicaStore::~MemoryReplicaStore() = default;

void MemoryReplicaStore::create_table(const TableSpec& spec) {
  spec.validate();
  (void)spec.indexes();  // duplicate index names are a BrokenSpecification
  std::lock_guard lock(state_->mutex);
  const auto id = table_id(spec);
  if (state_->tables.count(id) != 0) return;
  Table table;
  table.spec = spec;
  for (const auto& column : spec.columns) table.column_names.insert(column.name);
  state_->tables.emplace(id, std::move(table));
}

void MemoryReplicaStore::ensure_all_columns(const TableSpec& spec) {
  spec.validate();
  (void)spec.indexes();
  std::lock_guard lock(state_->mutex);
  Table& table = state_->table(spec);
  for (const auto& column : spec.columns) {
    if (table.column_names.count(column.name) != 0) continue;
    for (auto& [key, stored] : table.rows) {
      json value;
      try {
        const json* enrichment = stored.enrichment.is_null() ? nullptr : &stored.enrichment;
        value = column.value_from(ConvertContext{stored.data, nullptr, enrichment, column.name});
      } catch (const std::exception&) {
        value = nullptr;
      }
      stored.columns[column.name] = std::move(value);
    }
    table.column_names.insert(column.name);
  }
  table.spec = spec;
}

void MemoryReplicaStore::drop_table(const TableSpec& spec) {
  std::lock_guard lock(state_->mutex);
  state_->tables.erase(table_id(spec));
}

UpsertResult MemoryReplicaStore::upsert(const TableSpec& spec, std::span<const Row> rows,
                                        const UpsertOptions& options) {
  std::function<void(const TableSpec&, std::span<const Row>)> hook;
  {
    std::lock_guard lock(state_->mutex);
    hook = state_->before_upsert;
  }
  if (hook) hook(spec, rows);

  std::lock_guard lock(state_->mutex);
  ++state_->upsert_calls;
  UpsertCall call{table_id(spec), rows.size(), 0, options, false};
  // Recorded whether or not the call succeeds.
  struct Recorder {
    State& state;
    UpsertCall& call;
    ~Recorder() { state.calls.push_back(call); }
  } recorder{*state_, call};

  if (state_->fail_remaining > 0) {
    --state_->fail_remaining;
    std::rethrow_exception(state_->failure);
  }
  Table& table = state_->table(spec);

  validate_rows(spec, rows);
  std::map<json, std::size_t, KeyLess> last;
  for (std::size_t i = 0; i < rows.size(); ++i) last[rows[i].key] = i;

  UpsertResult result;
  result.changed.assign(rows.size(), false);
  std::vector<PlannedWrite> writes;
  std::int64_t next_pk = table.next_pk;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (last[rows[i].key] != i) continue;  // superseded by a later duplicate
    if (auto write = plan_write(table, spec, options, sanitized(rows[i]), next_pk)) {
      writes.push_back(std::move(*write));
      result.changed[i] = true;
    }
  }
  const std::uint64_t seq = ++state_->write_seq;
  commit_writes(table, writes, seq);
  if (options.seen == SeenMarks::every_row) {
    // A sweeping backfill saw these rows even where the rule kept the stored version.
    for (const auto& row : rows) {
      if (auto it = table.rows.find(row.key); it != table.rows.end()) it->second.seen = seq;
    }
  }
  table.next_pk = next_pk;
  for (const auto& column : spec.columns) table.column_names.insert(column.name);
  if (options.checkpoint) {
    state_->checkpoints[options.checkpoint->job_id][options.checkpoint->backfiller_key] = *options.checkpoint;
    ++state_->checkpoint_saves;
  }
  call.changed = result.changed_count();
  call.succeeded = true;
  state_->rows_written += rows.size();
  state_->rows_changed += call.changed;
  return result;
}

std::optional<Row> MemoryReplicaStore::find(const TableSpec& spec, const nlohmann::json& key) {
  std::lock_guard lock(state_->mutex);
  Table& table = state_->table(spec);
  auto it = table.rows.find(key);
  if (it == table.rows.end()) return std::nullopt;
  return to_row(it->second, spec);
}

std::size_t MemoryReplicaStore::count(const TableSpec& spec) {
  std::lock_guard lock(state_->mutex);
  return state_->table(spec).rows.size();
}

void MemoryReplicaStore::for_each(const TableSpec& spec, const std::function<void(const Row&)>& visit) {
  std::vector<Row> snapshot;
  {
    std::lock_guard lock(state_->mutex);
    const Table& table = state_->table(spec);
    snapshot.reserve(table.rows.size());
    for (const auto& [key, stored] : table.rows) snapshot.push_back(to_row(stored, spec));
  }
  for (const auto& row : snapshot) visit(row);
}

std::vector<Row> MemoryReplicaStore::rows(const TableSpec& spec) {
  std::vector<Row> out;
  std::lock_guard lock(state_->mutex);
  auto it = state_->tables.find(table_id(spec));
  if (it == state_->tables.end()) return out;
  for (const auto& [key, stored] : it->second.rows) out.push_back(to_row(stored, spec));
  return out;
}

bool MemoryReplicaStore::has_table(const TableSpec& spec) const {
  std::lock_guard lock(state_->mutex);
  return state_->tables.count(table_id(spec)) != 0;
}

std::vector<std::string> MemoryReplicaStore::column_names(const TableSpec& spec) const {
  std::lock_guard lock(state_->mutex);
  auto it = state_->tables.find(table_id(spec));
  if (it == state_->tables.end()) return {};
  return {it->second.column_names.begin(), it->second.column_names.end()};
}

std::map<std::string, Checkpoint> MemoryReplicaStore::load_checkpoints(std::int64_t job_id) {
  std::lock_guard lock(state_->mutex);
  auto it = state_->checkpoints.find(job_id);
  if (it == state_->checkpoints.end()) return {};
  return it->second;
}

void MemoryReplicaStore::save_checkpoint(const Checkpoint& checkpoint) {
  std::lock_guard lock(state_->mutex);
  state_->checkpoints[checkpoint.job_id][checkpoint.backfiller_key] = checkpoint;
  ++state_->checkpoint_saves;
}

void MemoryReplicaStore::clear_checkpoints(std::int64_t job_id) {
  std::lock_guard lock(state_->mutex);
  state_->checkpoints.erase(job_id);
}

void MemoryReplicaStore::begin_sweep_run(const TableSpec& spec, const SweepRun& run) {
  std::lock_guard lock(state_->mutex);
  (void)state_->table(spec);
  // emplace keeps the first run's mark when a job is resumed.
  state_->sweep_runs.emplace(run.job_id, SweepMark{table_id(spec), state_->write_seq + 1});
}

SweepResult MemoryReplicaStore::sweep(const TableSpec& spec, const SweepRun& run) {
  SweepResult result;
  if (spec.deletes == DeleteMode::none) return result;
  const std::size_t batch = std::max<std::size_t>(1, run.batch_rows);
  std::optional<json> after;  // the last key of the previous batch
  while (true) {
    // One lock per batch, as the SQL store takes one transaction per batch.
    std::lock_guard lock(state_->mutex);
    auto mark = state_->sweep_runs.find(run.job_id);
    if (mark == state_->sweep_runs.end() || mark->second.table != table_id(spec)) {
      throw InvalidPrecondition("no sweep run of job " + std::to_string(run.job_id) + " on " + table_id(spec) +
                                " (begin_sweep_run first)");
    }
    Table& table = state_->table(spec);
    auto it = after ? table.rows.upper_bound(*after) : table.rows.begin();
    const std::string now = format_timestamp(std::chrono::time_point_cast<std::chrono::microseconds>(
        std::chrono::system_clock::now()));
    std::size_t scanned = 0;
    for (; it != table.rows.end() && scanned < batch; ++scanned) {
      after = it->first;
      if (it->second.seen >= mark->second.mark || !sweep_row(table, spec, it, now)) {
        ++it;
        continue;
      }
      ++result.swept;
    }
    ++result.batches;
    if (it == table.rows.end()) return result;
  }
}

void MemoryReplicaStore::end_sweep_run(std::int64_t job_id) {
  std::lock_guard lock(state_->mutex);
  state_->sweep_runs.erase(job_id);
}

void MemoryReplicaStore::fail_next_upserts(int n, std::exception_ptr error) {
  if (!error) throw InvalidPrecondition("fail_next_upserts needs an exception");
  std::lock_guard lock(state_->mutex);
  state_->fail_remaining = n;
  state_->failure = std::move(error);
}

void MemoryReplicaStore::set_before_upsert(std::function<void(const TableSpec&, std::span<const Row>)> hook) {
  std::lock_guard lock(state_->mutex);
  state_->before_upsert = std::move(hook);
}

std::size_t MemoryReplicaStore::upsert_calls() const {
  std::lock_guard lock(state_->mutex);
  return state_->upsert_calls;
}

std::size_t MemoryReplicaStore::rows_written() const {
  std::lock_guard lock(state_->mutex);
  return state_->rows_written;
}

std::size_t MemoryReplicaStore::rows_changed() const {
  std::lock_guard lock(state_->mutex);
  return state_->rows_changed;
}

std::vector<UpsertCall> MemoryReplicaStore::calls() const {
  std::lock_guard lock(state_->mutex);
  return state_->calls;
}

std::size_t MemoryReplicaStore::checkpoint_saves() const {
  std::lock_guard lock(state_->mutex);
  return state_->checkpoint_saves;
}

}  // namespace webhookdb::memory
