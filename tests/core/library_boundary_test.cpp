// The library boundary of a shared build (BUILD_SHARED_LIBS=ON: every
// component hidden but for WEBHOOKDB_EXPORT, include/webhookdb/export.hpp).
// Exceptions thrown inside libwebhookdb_core are caught here by their exact
// type and by their bases, their virtuals answer from the library's vtable,
// and objects the library makes are dynamic_cast here: each needs the
// class's typeinfo and vtable exported. A class left unexported shows as an
// undefined typeinfo at link time or as a catch clause that no longer
// matches. In a static build the same test simply passes.

#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <memory>
#include <string>

#include "webhookdb/cancellation.hpp"
#include "webhookdb/clock.hpp"
#include "webhookdb/codec.hpp"
#include "webhookdb/errors.hpp"
#include "webhookdb/http_client.hpp"
#include "webhookdb/json_limits.hpp"
#include "webhookdb/pagination.hpp"
#include "webhookdb/retry_policy.hpp"

namespace webhookdb {
namespace {

using namespace std::chrono_literals;

HttpRequest get(const std::string& url) { return HttpRequest{.method = "GET", .url = url}; }

TEST(LibraryBoundary, AnHttpErrorThrownInTheLibraryIsCaughtByItsExactType) {
  const HttpResponse response{.status = 503, .headers = {{"Retry-After", "7"}}, .body = "busy"};
  bool caught = false;
  try {
    raise_for_status(get("https://api.test/items"), response);
  } catch (const HttpError& e) {
    caught = true;
    EXPECT_EQ(e.status(), 503);
    EXPECT_TRUE(e.retryable());  // HttpError's override, through the thrown object's vtable
    EXPECT_EQ(e.header("retry-after"), "7");
  } catch (...) {
    ADD_FAILURE() << "a 503 from raise_for_status was not caught as webhookdb::HttpError";
  }
  EXPECT_TRUE(caught);
}

TEST(LibraryBoundary, AnHttpErrorThrownInTheLibraryIsCaughtByItsBases) {
  const HttpResponse response{.status = 404, .body = "nope"};
  try {
    throw_http_error(get("https://api.test/missing"), response);
  } catch (const HttpBaseError& e) {
    EXPECT_FALSE(e.retryable());  // 404: HttpError::retryable, not HttpBaseError's `true`
    EXPECT_EQ(e.method(), "GET");
  }
  try {
    throw_http_error(get("https://api.test/missing"), response);
  } catch (const Error& e) {
    EXPECT_NE(dynamic_cast<const HttpError*>(&e), nullptr);
  }
  const auto error = [&] {
    try {
      throw_http_error(get("https://api.test/missing"), response);
    } catch (...) {
      return std::current_exception();
    }
    return std::exception_ptr();
  }();
  EXPECT_THROW(std::rethrow_exception(error), HttpError);
}

TEST(LibraryBoundary, InvalidInputAndItsSubclassThrownInTheLibraryAreCaught) {
  EXPECT_THROW((void)codec::base64_decode("not base64 !"), InvalidInput);
  bool caught = false;
  try {
    (void)parse_json_limited("{\"unterminated\": ", {}, "the body");
  } catch (const InvalidJson& e) {
    caught = true;
    EXPECT_EQ(e.failure(), JsonFailure::malformed);
    EXPECT_NE(std::string(e.where()).find("the body"), std::string::npos) << e.where();
  }
  EXPECT_TRUE(caught) << "InvalidJson from parse_json_limited was not caught by its type";
  EXPECT_THROW((void)parse_json_limited("[", {}, "x"), InvalidInput);
  EXPECT_THROW((void)parse_json_limited("[", {}, "x"), Error);
}

TEST(LibraryBoundary, CancelledThrownByTheLibrarysSleeperIsCaught) {
  CancellationSource source;
  source.cancel();
  EXPECT_THROW(real_sleeper()->sleep_for(10s, source.token()), Cancelled);
}

TEST(LibraryBoundary, ObjectsTheLibraryMakesAreDynamicCastHere) {
  const std::shared_ptr<Clock> clock = system_clock();
  EXPECT_NE(dynamic_cast<SystemClock*>(clock.get()), nullptr);
  const std::shared_ptr<Sleeper> sleeper = real_sleeper();
  EXPECT_NE(dynamic_cast<RealSleeper*>(sleeper.get()), nullptr);
  EXPECT_EQ(dynamic_cast<SystemClock*>(static_cast<Clock*>(nullptr)), nullptr);
}

TEST(LibraryBoundary, TheLibraryClassifiesAnErrorThrownHere) {
  // Thrown in this executable, judged by the library's retry policy (its
  // virtual call on the error, HttpError::retryable and status()).
  const auto policy = webhookdb_retry_policy(3);
  const HttpError unauthorized(401, "GET", "https://api.test/x");
  const HttpError unavailable(503, "GET", "https://api.test/x");
  EXPECT_EQ(policy->wait_before_retry(unauthorized, 1), std::nullopt);
  EXPECT_EQ(policy->wait_before_retry(unavailable, 1), std::optional<std::chrono::milliseconds>(1s));
}

}  // namespace
}  // namespace webhookdb
