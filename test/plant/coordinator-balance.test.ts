/**
 * The coordinator's gateway choice at the edges of two gateways' reach: a device goes to the gateway that
 * sees it best when that one has a free slot; with bestOnly (the pump's first pass) it waits for it
 * rather than taking a slot of a neighbour whose own devices still wait.
 */
import { strict as assert } from 'assert';
import { chooseGateway } from '../../lib/plant/coordinator/assignment';
import { PlantView } from '../../lib/plant/coordinator/selection';
import { CoordHarness } from './support/coord-harness';

function view(free: Record<string, number>, rssi: Record<string, number>): PlantView {
  const v = new PlantView();
  for (const [gateway, n] of Object.entries(free)) {
    v.setPresence({ v: 1, gateway, state: 'online', at: 0, slots: { total: 4, free: n }, adapter: { label: 'a', simulated: true }, software: '0' });
    if (rssi[gateway] === undefined) continue;
    const device = { address: 'aa:bb:cc:dd:ee:01', name: 'd1', rssi: rssi[gateway], version: '1.0.0', hashPrefix: null, protocol: 'v2' as const, otaState: null, sessionActive: false, lastSeen: 0 };
    v.setSightings({ v: 1, gateway, at: 0, devices: [device] });
  }
  return v;
}

describe('plant coordinator: gateway choice where two gateways meet', () => {
  const input = { address: 'aa:bb:cc:dd:ee:01', now: 1000, freshMs: 30000, triedBefore: new Set<string>(), inFlight: () => 0 };

  it('gives the device to the gateway that sees it best when that one has a free slot', () => {
    assert.equal(chooseGateway(view({ near: 1, far: 4 }, { near: -50, far: -78 }), { ...input, bestOnly: true })?.gateway, 'near');
    assert.equal(chooseGateway(view({ near: 1, far: 4 }, { near: -50, far: -78 }), input)?.gateway, 'near');
  });

  it('with bestOnly waits for the best gateway instead of a neighbour; without, takes the neighbour', () => {
    const full = view({ near: 0, far: 4 }, { near: -50, far: -78 });
    assert.equal(chooseGateway(full, { ...input, bestOnly: true }), null);
    assert.equal(chooseGateway(full, input)?.gateway, 'far');
  });

  it('with bestOnly still picks among gateways that see it equally well', () => {
    assert.equal(chooseGateway(view({ a: 0, b: 2 }, { a: -60, b: -60 }), { ...input, bestOnly: true })?.gateway, 'b');
  });

  it("a free gateway takes a device it sees best before a neighbour's device (one slot each)", async () => {
    const h = new CoordHarness();
    try {
      // In address order: two devices gw-a sees best (gw-b hears them weakly), then one only gw-b sees.
      const [x1, x2, y] = h.addDevices(3);
      await h.addGateway('gw-a', { [x1]: -50, [x2]: -50 }, { slots: 1, script: () => ({ kind: 'succeed', afterMs: 20_000 }) });
      await h.addGateway('gw-b', { [x1]: -80, [x2]: -80, [y]: -50 }, { slots: 1, script: () => ({ kind: 'succeed', afterMs: 20_000 }) });
      const c = await h.coordinator();
      await h.run(10);
      const state = await c.startCampaign(h.spec());
      await h.run(1000);
      const at = (address: string) => c.campaign(state.id)?.devices.find((d) => d.address === address)?.gateway;
      assert.deepEqual([at(x1), at(x2), at(y)], ['gw-a', null, 'gw-b']);
      const end = await h.ended(c, state.id);
      assert.equal(end.state, 'completed');
      assert.deepEqual(end.devices.map((d) => d.gateway), ['gw-a', 'gw-a', 'gw-b']);
    } finally {
      await h.close();
    }
  });
});
