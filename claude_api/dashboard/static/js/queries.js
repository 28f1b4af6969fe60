// The GraphQL documents the pages send. Every count, sum, rate and percentile is the API's; the
// pages only lay them out. A test validates each document here against schema.graphql.

const TOTALS = `
  invocations completed failed running successRate totalCostUsd unpricedInvocations avgCostUsd
  avgDurationSeconds inputTokens outputTokens cacheCreationTokens cacheReadTokens totalTokens`;

const ERRORS = "topErrors { kind name errorMessage count }";

export const OVERVIEW = `
query DashboardOverview($filter: UsageFilterInput!, $previous: UsageFilterInput!, $period: Period!) {
  current: usage(filter: $filter) { ${TOTALS} p95DurationSeconds ${ERRORS} }
  previous: usage(filter: $previous) { ${TOTALS} p95DurationSeconds }
  total: history(period: $period, filter: $filter) { buckets { startAt invocations totalCostUsd } }
  topAgents: leaderboard(kind: AGENT, by: USAGE, limit: 5, filter: $filter) { name }
  agents(filter: $filter, first: 1000) {
    items { kind name ${TOTALS} p95DurationSeconds }
    hasNext
  }
  skills(filter: $filter, first: 1000) {
    items { kind name ${TOTALS} p95DurationSeconds }
    hasNext
  }
}`;

export const TREND_FIELDS =
  "buckets { startAt invocations completed failed running successRate totalCostUsd }";

/** Histories of several agents or skills in one request: $k0/$n0, $k1/$n1, ... */
export function trends(count) {
  const variables = ["$filter: UsageFilterInput!", "$period: Period!"];
  const fields = [];
  for (let i = 0; i < count; i++) {
    variables.push(`$k${i}: Kind!`, `$n${i}: String!`);
    fields.push(`h${i}: history(kind: $k${i}, name: $n${i}, period: $period, filter: $filter) { ${TREND_FIELDS} }`);
  }
  return `query DashboardTrends(${variables.join(", ")}) {\n  ${fields.join("\n  ")}\n}`;
}

const STATS = `${TOTALS} p50DurationSeconds p95DurationSeconds p99DurationSeconds firstSeenAt lastSeenAt ${ERRORS}`;

export const USAGE = `
query DashboardUsage(
  $kind: Kind!, $name: String!, $isAgent: Boolean!, $filter: UsageFilterInput!,
  $previous: UsageFilterInput!, $period: Period!
) {
  agent(name: $name, filter: $filter) @include(if: $isAgent) { ${STATS} }
  skill(name: $name, filter: $filter) @skip(if: $isAgent) { ${STATS} }
  previousAgent: agent(name: $name, filter: $previous) @include(if: $isAgent) { ${TOTALS} p95DurationSeconds }
  previousSkill: skill(name: $name, filter: $previous) @skip(if: $isAgent) { ${TOTALS} p95DurationSeconds }
  history(kind: $kind, name: $name, period: $period, filter: $filter) { ${TREND_FIELDS} }
  tasks(kind: $kind, name: $name, filter: $filter, first: 15) {
    items {
      taskId invocations completed failed running totalCostUsd unpricedInvocations totalTokens
      firstSeenAt lastSeenAt
    }
    hasNext
  }
}`;

export const TASKS = `
query DashboardTasks($kind: Kind, $name: String, $filter: UsageFilterInput!, $after: String) {
  tasks(kind: $kind, name: $name, filter: $filter, first: 50, after: $after) {
    items {
      taskId invocations completed failed running totalCostUsd unpricedInvocations totalTokens
      firstSeenAt lastSeenAt
    }
    hasNext
    nextCursor
  }
  names
}`;

export const TASK = `
query DashboardTask($id: String!) {
  task(id: $id) {
    id
    summary { totalCostUsd unpricedInvocations }
    invocations {
      kind name eventId parentId projectId status timestamp finishedAt durationSeconds costUsd
      costSource inputTokens outputTokens cacheCreationTokens cacheReadTokens model errorMessage
      totalCostUsd unpricedInvocations
    }
  }
}`;
