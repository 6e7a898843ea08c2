// Opaque ids name integrations in webhook URLs: they must not be guessable.

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "webhookdb/service_integration.hpp"

namespace webhookdb {
namespace {

constexpr std::string_view kAlphabet = "0123456789abcdefghijklmnopqrstuvwxyz";

TEST(OpaqueId, HasThePrefixAndAtLeast128BitsOfBase36) {
  const std::string id = new_opaque_id("svi");
  ASSERT_EQ(id.rfind("svi_", 0), 0U) << id;
  const std::string random = id.substr(4);
  EXPECT_EQ(random.find_first_not_of(kAlphabet), std::string::npos) << id;
  EXPECT_GE(static_cast<double>(random.size()) * std::log2(36.0), 128.0)
      << id << " is too short to be unguessable";
  EXPECT_EQ(new_opaque_id("bfj").rfind("bfj_", 0), 0U);
}

TEST(OpaqueId, ManyAreDistinctAndUseTheWholeAlphabet) {
  std::set<std::string> ids;
  std::set<char> seen;
  for (int i = 0; i < 20'000; ++i) {
    const std::string id = new_opaque_id();
    ids.insert(id);
    seen.insert(id.begin() + 4, id.end());
  }
  EXPECT_EQ(ids.size(), 20'000U);
  EXPECT_EQ(seen.size(), kAlphabet.size());
}

// A generator whose state lives in the process is copied by fork(): a
// pre-forking server's children would hand out their parent's next ids.
TEST(OpaqueId, AForkedChildDoesNotRepeatItsParent) {
  (void)new_opaque_id();  // the parent has generated before it forks
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const std::string id = new_opaque_id();
    const auto written = ::write(fds[1], id.data(), id.size());
    ::_exit(written == static_cast<ssize_t>(id.size()) ? 0 : 1);
  }
  ::close(fds[1]);
  const std::string mine = new_opaque_id();
  std::string theirs(64, '\0');
  const auto got = ::read(fds[0], theirs.data(), theirs.size());
  ::close(fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_GT(got, 0);
  theirs.resize(static_cast<std::size_t>(got));
  EXPECT_NE(theirs, mine) << "the child repeated the parent's next id";
}

}  // namespace
}  // namespace webhookdb
