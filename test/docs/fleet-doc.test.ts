/**
 * docs/FLEET.md is the wire contract of the plant: its schema blocks must be PLANT_SCHEMAS exactly
 * (scripts/gen-fleet-doc.js rewrites them) and its topic table must be the tree PlantTopics builds.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as path from 'path';
import { PLANT_MESSAGE_KINDS, PLANT_SCHEMAS } from '../../lib/plant/schemas';
import { PlantTopics } from '../../lib/plant/topics';
import { repoRoot } from '../helpers/paths';

describe('docs/FLEET.md', () => {
  const doc = fs.readFileSync(path.join(repoRoot(), 'docs', 'FLEET.md'), 'utf8');

  it('shows every message schema exactly as PLANT_SCHEMAS holds it (run scripts/gen-fleet-doc.js after a change)', () => {
    const blocks = [...doc.matchAll(/<!-- schema:(\w+) -->\n```json\n([\s\S]*?)\n```\n<!-- \/schema:\1 -->/g)];
    assert.deepEqual(blocks.map((b) => b[1]).sort(), [...PLANT_MESSAGE_KINDS].sort(), 'one block per message kind');
    for (const [, kind, json] of blocks) {
      assert.deepEqual(JSON.parse(json), PLANT_SCHEMAS[kind as keyof typeof PLANT_SCHEMAS], `the ${kind} schema block differs`);
    }
  });

  it('lists exactly the topics of PlantTopics, with the placeholders it documents', () => {
    const t = new PlantTopics('<prefix>');
    const root = t.root;
    const produced = [
      t.presence('{gateway}'),
      t.sightings('{gateway}'),
      t.tasks('{gateway}'),
      t.execution('{campaign}', '{address}'),
      t.campaignState('{campaign}'),
      t.campaignProgress('{campaign}'),
      t.campaignControl('{campaign}'),
      t.imageRequest('{sha256}'),
      t.imageChunks('{sha256}', '{gateway}'),
      t.deviceClaim('{address}'),
    ].map((topic) => topic.replace(root, '<root>'));
    const documented = [...doc.matchAll(/^\| `(<root>\/[^`]+)` \|/gm)].map((m) => m[1]);
    assert.deepEqual(documented, produced);
    assert.equal(root, '<prefix>/v1');
    for (const filter of [t.allPresence, t.allSightings, t.allCampaignStates, t.allCampaignControls, t.allExecutions('{campaign}'), t.allImageRequests, t.allClaims]) {
      assert.ok(doc.includes(`\`${filter.replace(root, '<root>')}\``), `the subscriptions name ${filter}`);
    }
  });
});
