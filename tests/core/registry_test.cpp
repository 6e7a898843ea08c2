// Registry: descriptors by name, and making replicators for integrations.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "webhookdb/errors.hpp"
#include "webhookdb/registry.hpp"
#include "webhookdb/testing/fake_replicator.hpp"

namespace webhookdb {
namespace {

using namespace webhookdb::testing;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(Registry, FindsDescriptorsByName) {
  Registry registry;
  register_fakes(registry);
  EXPECT_THAT(registry.names(), ElementsAre("fake_backfill_only_v1", "fake_dependent_v1", "fake_v1",
                                            "fake_webhooks_only_v1", "fake_with_criteria_v1"));
  ASSERT_NE(registry.find("fake_v1"), nullptr);
  EXPECT_EQ(registry.find("nope"), nullptr);
  EXPECT_EQ(registry.get("fake_dependent_v1").dependency_descriptor, "fake_v1");
  EXPECT_FALSE(registry.get("fake_webhooks_only_v1").supports_backfill);
  EXPECT_TRUE(registry.get("fake_webhooks_only_v1").supports_webhooks);
  EXPECT_FALSE(registry.get("fake_backfill_only_v1").supports_webhooks);
  EXPECT_TRUE(registry.get("fake_backfill_only_v1").supports_backfill);
}

TEST(Registry, RejectsBadDescriptors) {
  Registry registry;
  registry.add(fake_v1());
  try {
    registry.add(fake_v1());
    FAIL() << "expected InvalidPrecondition";
  } catch (const InvalidPrecondition& e) {
    EXPECT_THAT(e.what(), HasSubstr("fake_v1"));
  }
  Descriptor unnamed = fake_v1();
  unnamed.name.clear();
  EXPECT_THROW(registry.add(unnamed), InvalidPrecondition);
  Descriptor no_factory = fake_v1();
  no_factory.name = "other_v1";
  no_factory.factory = nullptr;
  EXPECT_THROW(registry.add(no_factory), InvalidPrecondition);
}

TEST(Registry, GetNamesTheUnknownDescriptor) {
  Registry registry;
  try {
    (void)registry.get("stripe_charge_v9");
    FAIL() << "expected InvalidPrecondition";
  } catch (const InvalidPrecondition& e) {
    EXPECT_THAT(e.what(), HasSubstr("stripe_charge_v9"));
  }
}

TEST(Registry, MakesTheReplicatorForAnIntegration) {
  Registry registry;
  auto control = register_fakes(registry);
  ServiceIntegration si;
  si.id = 7;
  si.opaque_id = "svi_x";
  si.service_name = "fake_backfill_only_v1";
  si.table_name = "t";
  auto r = registry.make(si, ReplicatorContext{});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->descriptor().name, "fake_backfill_only_v1");
  EXPECT_EQ(r->integration(), si);
  auto* fake = dynamic_cast<FakeReplicator*>(r.get());
  ASSERT_NE(fake, nullptr);
  EXPECT_EQ(&fake->control(), control.get()) << "the registered control is shared";
  si.service_name = "unknown_v1";
  EXPECT_THROW((void)registry.make(si, ReplicatorContext{}), InvalidPrecondition);
}

}  // namespace
}  // namespace webhookdb
