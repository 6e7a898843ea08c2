#pragma once
// The conformance kit: GoogleTest suites every replicator should pass, the
// way WebhookDB's shared spec examples or Airbyte's standard connector tests
// are run by each connector. A replicator author writes one fixture struct
// and instantiates the suite for the stores to check it on:
//
//   struct ChargesFixture {
//     static void register_replicators(webhookdb::Registry& r) { r.add(Charges::descriptor()); }
//     static constexpr const char* service_name = "stripe_charge_v1";
//     // Distinct resources as the API lists them, i = 0, 1, ... (a few thousand are asked for).
//     static nlohmann::json resource(std::size_t i);
//     // Two versions of resource(0); the update rule must keep newer() whichever
//     // arrives last, by backfill or by webhook.
//     static nlohmann::json older();
//     static nlohmann::json newer();
//     // The API's answer to one backfill page request: `items`, and whether a next page follows.
//     static webhookdb::HttpResponse page(const std::vector<nlohmann::json>& items, bool more);
//     // Whether a request of an incremental backfill asks only for what changed since
//     // `last_backfilled_at` (the mark of the run before it).
//     static bool asks_only_since(const webhookdb::HttpRequest& request, webhookdb::Timestamp last_backfilled_at);
//     // The webhook the API sends for `resource` (signed with integration.webhook_secret
//     // when the replicator verifies), made so that it becomes the row a backfill of `resource` makes.
//     static webhookdb::WebhookRequest webhook(const nlohmann::json& resource,
//                                              const webhookdb::ServiceIntegration& integration);
//     // Optional: static void configure(webhookdb::ServiceIntegration& integration);
//   };
//
//   namespace webhookdb::testing {  // where the suite's names are
//   using ChargeSuites = ::testing::Types<Conformance<ChargesFixture>,
//                                         Conformance<ChargesFixture, PostgresBackend>>;
//   INSTANTIATE_TYPED_TEST_SUITE_P(Charges, ReplicatorConformance, ChargeSuites);
//   }
//
// PostgresBackend is in pg_harness.hpp (link webhookdb::pg). Header-only:
// link GTest::gtest besides webhookdb::testing and webhookdb::memory.
//
// Each check is also a function returning ::testing::AssertionResult
// (conformance::backfills_every_page<Fixture>(harness) ...), so a test can
// assert that a broken replicator fails one, and why.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <typeinfo>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "webhookdb/cancellation.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/registry.hpp"
#include "webhookdb/replicator.hpp"
#include "webhookdb/testing/test_harness.hpp"

namespace webhookdb::testing {

// The memory stores of TestHarness, as they are.
struct MemoryBackend {
  explicit MemoryBackend(TestHarness& /*harness*/) {}
};

// One instantiation of the suite: a fixture on a store backend.
template <class Fixture, class Backend = MemoryBackend>
struct Conformance {
  using fixture = Fixture;
  using backend = Backend;
};

namespace conformance {

// Credentials distinctive enough to search every message and log line for.
inline constexpr const char* kBackfillKey = "conformance-key-5b1e9d7c";
inline constexpr const char* kBackfillSecret = "conformance-secret-8a2f4c61";
inline constexpr const char* kWebhookSecret = "conformance-whsec-3d7e0b92";

template <class F>
concept Configurable = requires(ServiceIntegration& si) { F::configure(si); };

// A fresh integration of the fixture's service (and so a fresh table).
template <class F>
ServiceIntegration integration(TestHarness& h) {
  return h.integration(F::service_name, [](ServiceIntegration& si) {
    si.backfill_key = kBackfillKey;
    si.backfill_secret = kBackfillSecret;
    si.webhook_secret = kWebhookSecret;
    if constexpr (Configurable<F>) F::configure(si);
  });
}

// The integration as the job store has it now (last_backfilled_at moved by a backfill).
inline ServiceIntegration reload(TestHarness& h, const ServiceIntegration& si) {
  auto found = h.job_store->find_integration(si.id);
  if (!found) throw InvalidPrecondition("conformance: integration " + std::to_string(si.id) + " vanished");
  return *found;
}

template <class F>
std::vector<nlohmann::json> resources(std::size_t from, std::size_t n) {
  std::vector<nlohmann::json> out;
  out.reserve(n);
  for (std::size_t i = from; i < from + n; ++i) out.push_back(F::resource(i));
  return out;
}

// Scripts `pages` in order on the harness's default HTTP script.
template <class F>
void serve(TestHarness& h, const std::vector<std::vector<nlohmann::json>>& pages) {
  for (std::size_t i = 0; i < pages.size(); ++i) {
    const HttpResponse r = F::page(pages[i], i + 1 < pages.size());
    h.http->respond(r.status, r.body, r.headers);
  }
}

// Runs a backfill of a new job; the exception it threw, if any.
inline std::exception_ptr run_backfill(TestHarness& h, const ServiceIntegration& si, bool incremental = false,
                                       const CancellationToken& cancel = CancellationToken{}) {
  auto r = h.replicator(si);
  auto job = h.job(si, incremental);
  try {
    r->backfill(job, cancel);
  } catch (...) {
    return std::current_exception();
  }
  return nullptr;
}

inline std::string describe(const std::exception_ptr& error) {
  if (!error) return "no error";
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return std::string(typeid(e).name()) + ": " + e.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

inline std::string key_text(const nlohmann::json& key) { return key.is_string() ? key.get<std::string>() : key.dump(); }

// The stored row of `key` in `r`'s table, or nullopt.
inline std::optional<Row> stored(TestHarness& h, const Replicator& r, const nlohmann::json& key) {
  return h.replica_store->find(r.table_spec(), key);
}

// The `data` a backfill of `resource` stores.
inline nlohmann::json backfill_data(const Replicator& r, const nlohmann::json& resource) {
  auto row = r.row_for(nlohmann::json(resource));
  if (!row) throw InvalidPrecondition("conformance: the replicator skips the fixture's resource on backfills");
  return row->data;
}

// Secrets in no message and no log line.
inline ::testing::AssertionResult no_secret_in(const TestHarness& h, const std::string& message) {
  for (const char* secret : {kBackfillKey, kBackfillSecret, kWebhookSecret}) {
    if (message.find(secret) != std::string::npos) {
      return ::testing::AssertionFailure() << "an error message holds a credential: " << message;
    }
    if (h.logger->text().find(secret) != std::string::npos) {
      return ::testing::AssertionFailure() << "a log line holds a credential:\n" << h.logger->text();
    }
  }
  return ::testing::AssertionSuccess();
}

// --- The checks ---

// Every page of a full backfill is fetched once, in order, and every item becomes a row.
template <class F>
::testing::AssertionResult backfills_every_page(TestHarness& h) {
  const auto si = integration<F>(h);
  const std::vector<std::vector<nlohmann::json>> pages = {resources<F>(0, 3), resources<F>(3, 3),
                                                          resources<F>(6, 2)};
  serve<F>(h, pages);
  if (auto error = run_backfill(h, si)) {
    return ::testing::AssertionFailure() << "a backfill of 3 good pages failed: " << describe(error);
  }
  if (h.http->request_count() != pages.size() || h.http->pending_steps() != 0) {
    return ::testing::AssertionFailure() << "3 pages were served but " << h.http->request_count()
                                         << " requests were made (" << h.http->pending_steps()
                                         << " pages never asked for)";
  }
  auto r = h.replicator(si);
  const auto rows = h.rows(*r);
  if (rows.size() != 8) {
    return ::testing::AssertionFailure() << "3 pages held 8 distinct resources but the table has " << rows.size()
                                         << " rows";
  }
  for (std::size_t i = 0; i < 8; ++i) {
    auto expected = r->row_for(F::resource(i));
    if (!expected) return ::testing::AssertionFailure() << "the replicator skips resource(" << i << ")";
    if (!stored(h, *r, expected->key)) {
      return ::testing::AssertionFailure() << "resource(" << i << ") (key " << key_text(expected->key)
                                           << ") was fetched but is not in the table";
    }
  }
  return ::testing::AssertionSuccess();
}

// An incremental backfill asks only for what changed since the mark the
// previous incremental run left; the first one, with no mark yet, asks for
// everything (as WebhookDB's contract says, a full backfill moves no mark),
// so the fixture's predicate is seen to fail too.
template <class F>
::testing::AssertionResult incremental_asks_only_for_changes(TestHarness& h) {
  auto si = integration<F>(h);
  serve<F>(h, {resources<F>(0, 2)});
  if (auto error = run_backfill(h, si, true)) {
    return ::testing::AssertionFailure() << "the first incremental backfill failed: " << describe(error);
  }
  const auto first_requests = h.http->requests();
  si = reload(h, si);
  if (!si.last_backfilled_at) {
    return ::testing::AssertionFailure() << "an incremental backfill that succeeded left last_backfilled_at unset";
  }
  const Timestamp mark = *si.last_backfilled_at;
  for (const auto& request : first_requests) {
    if (F::asks_only_since(request, mark)) {
      return ::testing::AssertionFailure() << "the first incremental backfill, with no mark yet, already asks only "
                                              "for changes ("
                                           << request.url << "): it must ask for everything";
    }
  }
  h.clock->advance(std::chrono::hours(1));
  h.http->reset();
  serve<F>(h, {resources<F>(2, 1)});
  if (auto error = run_backfill(h, si, true)) {
    return ::testing::AssertionFailure() << "the incremental backfill failed: " << describe(error);
  }
  const auto requests = h.http->requests();
  if (requests.empty()) return ::testing::AssertionFailure() << "the incremental backfill made no request";
  for (const auto& request : requests) {
    if (!F::asks_only_since(request, mark)) {
      return ::testing::AssertionFailure() << "an incremental backfill asked for everything, not only what "
                                              "changed since the last run: "
                                           << request.url;
    }
  }
  auto r = h.replicator(si);
  if (h.rows(*r).size() != 3) {
    return ::testing::AssertionFailure() << "after the incremental run the table has " << h.rows(*r).size()
                                         << " rows, not 3";
  }
  return ::testing::AssertionSuccess();
}

// `data` of resource(0)'s row equals `want`; else a failure saying `how`.
inline ::testing::AssertionResult holds(TestHarness& h, const Replicator& r, const nlohmann::json& key,
                                        const nlohmann::json& want, const std::string& how) {
  auto row = stored(h, r, key);
  if (!row) return ::testing::AssertionFailure() << how << ": the row is missing";
  if (row->data != want) {
    return ::testing::AssertionFailure() << how << ": the older version overwrote the newer one (stored "
                                         << row->data.dump().substr(0, 300) << ")";
  }
  return ::testing::AssertionSuccess();
}

// A backfill page holding an older version never overwrites a newer row.
template <class F>
::testing::AssertionResult backfill_keeps_newer(TestHarness& h) {
  const auto si = integration<F>(h);
  serve<F>(h, {{F::newer()}});
  if (auto error = run_backfill(h, si)) return ::testing::AssertionFailure() << describe(error);
  h.http->reset();
  serve<F>(h, {{F::older()}});
  if (auto error = run_backfill(h, si)) return ::testing::AssertionFailure() << describe(error);
  auto r = h.replicator(si);
  const auto key = r->row_for(F::newer())->key;
  return holds(h, *r, key, backfill_data(*r, F::newer()), "newer() by backfill, then older() by backfill");
}

// A webhook of an older version never overwrites a newer row, and a newer
// webhook does replace an older row.
template <class F>
::testing::AssertionResult webhook_keeps_newer(TestHarness& h) {
  const auto si = integration<F>(h);
  auto r = h.replicator(si);
  const auto newer = r->rows_for_webhook(F::webhook(F::newer(), si));
  const auto older = r->rows_for_webhook(F::webhook(F::older(), si));
  if (newer.size() != 1 || older.size() != 1) {
    return ::testing::AssertionFailure() << "the fixture's webhooks of older() and newer() must make one row each";
  }
  if (newer[0].data == older[0].data) {
    return ::testing::AssertionFailure() << "older() and newer() make the same data: the check could not fail";
  }
  (void)r->upsert_webhook(F::webhook(F::older(), si));
  (void)r->upsert_webhook(F::webhook(F::newer(), si));
  if (auto ok = holds(h, *r, newer[0].key, newer[0].data, "older() then newer() by webhook"); !ok) {
    return ::testing::AssertionFailure() << "a newer webhook did not replace an older row";
  }
  (void)r->upsert_webhook(F::webhook(F::older(), si));
  return holds(h, *r, newer[0].key, newer[0].data, "newer() then older() by webhook");
}

// A webhook of the newer version and a backfill of the older one, at the
// same time: the newer one stays, whichever write lands last.
template <class F>
::testing::AssertionResult race_keeps_newer(TestHarness& h, int rounds = 8) {
  for (int round = 0; round < rounds; ++round) {
    const auto si = integration<F>(h);
    auto r = h.replicator(si);
    const auto webhook = F::webhook(F::newer(), si);
    const auto want = r->rows_for_webhook(webhook).at(0);
    h.http->reset();
    serve<F>(h, {{F::older()}});
    std::exception_ptr backfill_error;
    std::exception_ptr webhook_error;
    std::thread backfill([&] { backfill_error = run_backfill(h, si); });
    std::thread hook([&] {
      try {
        (void)r->upsert_webhook(webhook);
      } catch (...) {
        webhook_error = std::current_exception();
      }
    });
    backfill.join();
    hook.join();
    if (backfill_error || webhook_error) {
      return ::testing::AssertionFailure() << "round " << round << ": backfill " << describe(backfill_error)
                                           << ", webhook " << describe(webhook_error);
    }
    if (auto ok = holds(h, *r, want.key, want.data, "a newer() webhook racing an older() backfill"); !ok) {
      return ok << " (round " << round << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

// A webhook of a resource becomes the same row a backfill of it makes.
template <class F>
::testing::AssertionResult webhook_row_matches_backfill_row(TestHarness& h) {
  const auto by_backfill = integration<F>(h);
  serve<F>(h, {{F::resource(0)}});
  if (auto error = run_backfill(h, by_backfill)) return ::testing::AssertionFailure() << describe(error);
  const auto by_webhook = integration<F>(h);
  auto rb = h.replicator(by_backfill);
  auto rw = h.replicator(by_webhook);
  (void)rw->upsert_webhook(F::webhook(F::resource(0), by_webhook));
  const auto backfilled = h.rows(*rb);
  const auto hooked = h.rows(*rw);
  if (backfilled.size() != 1 || hooked.size() != 1) {
    return ::testing::AssertionFailure() << "expected one row each, got " << backfilled.size() << " by backfill and "
                                         << hooked.size() << " by webhook";
  }
  const auto& spec = rb->table_spec();
  if (backfilled[0].key != hooked[0].key) {
    return ::testing::AssertionFailure() << "the remote key differs: " << backfilled[0].key.dump() << " by backfill, "
                                         << hooked[0].key.dump() << " by webhook";
  }
  for (std::size_t c = 0; c < spec.columns.size() && c < backfilled[0].values.size(); ++c) {
    if (backfilled[0].values[c] != hooked[0].values[c]) {
      return ::testing::AssertionFailure() << "column " << spec.columns[c].name << " differs: "
                                           << backfilled[0].values[c].dump() << " by backfill, "
                                           << hooked[0].values[c].dump() << " by webhook";
    }
  }
  if (backfilled[0].data != hooked[0].data) {
    return ::testing::AssertionFailure() << "the data column differs between the backfill's row and the webhook's";
  }
  return ::testing::AssertionSuccess();
}

// A backfill interrupted after its first checkpoint resumes from it: the
// second run asks for none of the pages the checkpoint covers, and every
// resource ends up in the table.
template <class F>
::testing::AssertionResult resumes_from_checkpoint(TestHarness& h) {
  const auto si = integration<F>(h);
  auto r = h.replicator(si);
  const std::size_t batch = r->options().write_mode == BackfillWriteMode::per_item ? 1 : r->options().batch_size;
  const std::size_t per_page = std::min<std::size_t>(batch, 100);
  // Enough pages that a batch (and its checkpoint) is written before the interruption.
  const std::size_t before = (batch + per_page - 1) / per_page + 1;
  const std::size_t total = before + 2;
  std::vector<std::vector<nlohmann::json>> pages;
  for (std::size_t p = 0; p < total; ++p) pages.push_back(resources<F>(p * per_page, per_page));

  // Run 1: pages [0, before) answered, then the job is cancelled while asking for the next.
  CancellationSource stop;
  for (std::size_t p = 0; p < before; ++p) {
    const HttpResponse resp = F::page(pages[p], true);
    h.http->respond(resp.status, resp.body, resp.headers);
  }
  h.http->call([&stop](const HttpRequest&, const CancellationToken&) -> HttpResponse {
    stop.cancel();
    throw Cancelled();
  });
  auto job = h.job(si);
  try {
    r->backfill(job, stop.token());
    return ::testing::AssertionFailure() << "the backfill went on after its token was cancelled";
  } catch (const Cancelled&) {
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "a cancelled backfill threw " << typeid(e).name() << ": " << e.what()
                                         << " instead of Cancelled";
  }
  const auto first_urls = h.http->urls();
  if (h.replica_store->load_checkpoints(job.id).empty()) {
    return ::testing::AssertionFailure() << "no checkpoint was kept after " << before << " pages of " << per_page
                                         << " items (batch size " << batch << ") and a cancellation";
  }

  // Run 2: the same job; each request is answered with the page its URL named in run 1,
  // and requests past those with the pages after it.
  h.http->reset();
  std::size_t next = 0;
  h.http
      ->call([&](const HttpRequest& request, const CancellationToken&) -> HttpResponse {
        const auto it = std::find(first_urls.begin(), first_urls.end(), request.url);
        if (it != first_urls.end()) next = static_cast<std::size_t>(it - first_urls.begin());
        if (next >= total) throw InvalidPrecondition("conformance: more pages asked for than served");
        const std::size_t p = next++;
        return F::page(pages[p], p + 1 < total);
      })
      .repeat();
  auto resumed = h.replicator(si);
  try {
    resumed->backfill(job);
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "the resumed backfill failed: " << typeid(e).name() << ": " << e.what();
  }
  const auto second_urls = h.http->urls();
  if (!second_urls.empty() && !first_urls.empty() && second_urls.front() == first_urls.front()) {
    return ::testing::AssertionFailure() << "the resumed backfill started again from the first page ("
                                         << second_urls.size() << " requests) instead of its checkpoint";
  }
  const auto count = h.replica_store->count(resumed->table_spec());
  if (count != total * per_page) {
    return ::testing::AssertionFailure() << "after resuming the table has " << count << " rows, not "
                                         << total * per_page;
  }
  return ::testing::AssertionSuccess();
}

// A 401 is an answer, not a fault: one request, no retry, no wait, and the
// error says 401 without a credential.
template <class F>
::testing::AssertionResult unauthorized_is_not_retried(TestHarness& h) {
  const auto si = integration<F>(h);
  h.http->respond(401, R"({"error":"invalid api key"})").repeat();
  const auto error = run_backfill(h, si);
  if (h.http->request_count() != 1) {
    return ::testing::AssertionFailure() << "a 401 was asked " << h.http->request_count() << " times";
  }
  if (!h.sleeper->waits().empty()) {
    return ::testing::AssertionFailure() << "the backfill waited " << h.sleeper->total().count()
                                         << " ms after a 401";
  }
  if (error) {
    try {
      std::rethrow_exception(error);
    } catch (const HttpError& e) {
      if (e.status() != 401) return ::testing::AssertionFailure() << "a 401 became HttpError " << e.status();
      return no_secret_in(h, e.what());
    } catch (const std::exception& e) {
      return ::testing::AssertionFailure() << "a 401 became " << typeid(e).name() << ": " << e.what();
    }
  }
  return no_secret_in(h, "");  // handled by on_backfill_error
}

// Pages that are not what the API sends (malformed JSON, wrong types) fail
// the backfill with a webhookdb::Error, not a parser's or the standard
// library's exception, and rows already written stay as they were.
template <class F>
::testing::AssertionResult bad_pages_fail_clearly(TestHarness& h) {
  for (const std::string body : {R"({"data": [)", "[1,2", "42", R"("text")", "null", R"({"data": 7})"}) {
    const auto si = integration<F>(h);
    h.http->reset();
    serve<F>(h, {{F::resource(0)}});
    if (auto error = run_backfill(h, si)) return ::testing::AssertionFailure() << describe(error);
    h.http->reset();
    h.http->respond(200, body, {{"Content-Type", "application/json"}});
    const auto error = run_backfill(h, si);
    auto r = h.replicator(si);
    if (h.replica_store->count(r->table_spec()) != 1) {
      return ::testing::AssertionFailure() << "the page " << body << " changed what was already written";
    }
    if (!error) continue;  // handled by on_backfill_error
    try {
      std::rethrow_exception(error);
    } catch (const Error& e) {
      if (std::string(e.what()).size() < 10) {
        return ::testing::AssertionFailure() << "the page " << body << " gave an error that says nothing: " << e.what();
      }
      if (auto ok = no_secret_in(h, e.what()); !ok) return ok;
    } catch (const std::exception& e) {
      return ::testing::AssertionFailure() << "the page " << body << " gave " << typeid(e).name() << ": " << e.what()
                                           << ", not a webhookdb::Error naming what was wrong";
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace conformance

// The typed suite. Instantiate with INSTANTIATE_TYPED_TEST_SUITE_P(Name,
// ReplicatorConformance, ::testing::Types<Conformance<Fixture, Backend>...>).
template <class Param>
class ReplicatorConformance : public ::testing::Test {
 protected:
  using F = typename Param::fixture;

  ReplicatorConformance() { F::register_replicators(*harness.registry); }

  TestHarness harness;
  typename Param::backend backend{harness};
};

TYPED_TEST_SUITE_P(ReplicatorConformance);

TYPED_TEST_P(ReplicatorConformance, BackfillsEveryPage) {
  EXPECT_TRUE(conformance::backfills_every_page<typename TestFixture::F>(this->harness));
}
TYPED_TEST_P(ReplicatorConformance, IncrementalAsksOnlyForWhatChanged) {
  EXPECT_TRUE(conformance::incremental_asks_only_for_changes<typename TestFixture::F>(this->harness));
}
TYPED_TEST_P(ReplicatorConformance, ABackfillNeverOverwritesNewWithOld) {
  EXPECT_TRUE(conformance::backfill_keeps_newer<typename TestFixture::F>(this->harness));
}
TYPED_TEST_P(ReplicatorConformance, AWebhookNeverOverwritesNewWithOld) {
  EXPECT_TRUE(conformance::webhook_keeps_newer<typename TestFixture::F>(this->harness));
}
TYPED_TEST_P(ReplicatorConformance, ARacingBackfillNeverOverwritesANewerWebhook) {
  EXPECT_TRUE(conformance::race_keeps_newer<typename TestFixture::F>(this->harness));
}
TYPED_TEST_P(ReplicatorConformance, AWebhookBecomesTheRowABackfillMakes) {
  EXPECT_TRUE(conformance::webhook_row_matches_backfill_row<typename TestFixture::F>(this->harness));
}
TYPED_TEST_P(ReplicatorConformance, ResumesFromACheckpointWithoutRefetching) {
  EXPECT_TRUE(conformance::resumes_from_checkpoint<typename TestFixture::F>(this->harness));
}
TYPED_TEST_P(ReplicatorConformance, AnUnauthorizedPageIsNotRetried) {
  EXPECT_TRUE(conformance::unauthorized_is_not_retried<typename TestFixture::F>(this->harness));
}
TYPED_TEST_P(ReplicatorConformance, BadPagesFailClearlyAndLoseNothing) {
  EXPECT_TRUE(conformance::bad_pages_fail_clearly<typename TestFixture::F>(this->harness));
}

REGISTER_TYPED_TEST_SUITE_P(ReplicatorConformance, BackfillsEveryPage, IncrementalAsksOnlyForWhatChanged,
                            ABackfillNeverOverwritesNewWithOld, AWebhookNeverOverwritesNewWithOld,
                            ARacingBackfillNeverOverwritesANewerWebhook, AWebhookBecomesTheRowABackfillMakes,
                            ResumesFromACheckpointWithoutRefetching, AnUnauthorizedPageIsNotRetried,
                            BadPagesFailClearlyAndLoseNothing);
// A test that includes the kit only for its check functions is no mistake.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ReplicatorConformance);

}  // namespace webhookdb::testing
