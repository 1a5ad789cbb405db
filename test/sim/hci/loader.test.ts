/**
 * noble's hci-socket layer loaded for a simulated adapter stays in a scope of its own: the process's
 * module cache does not get noble's hci-socket files (so the real native path loads its own copy), no
 * process listeners are left behind, and each adapter's socket reaches its own controller.
 */
import { strict as assert } from 'assert';
import { createSimRadio } from '../../../lib/sim/radio';
import { VirtualClock } from '../../../lib/sim/virtual-clock';
import { createHciNoble } from '../../../lib/sim/hci/noble-hci-loader';
import { createNobleCentral } from '../../../lib/ble/noble-central';

describe('sim/hci: isolated loading of noble\'s HCI layer', () => {
  it('touches neither the module cache nor the process listeners; two adapters talk to their own controllers', async () => {
    const cached = () => Object.keys(require.cache).filter((k) => /@abandonware[\\/]noble[\\/]lib[\\/]hci-socket[\\/]/.test(k));
    const before = { cache: cached(), sigint: process.listenerCount('SIGINT'), exit: process.listenerCount('exit') };
    const clock = new VirtualClock();
    const radio = createSimRadio({ clock, link: 'reference' });
    const second = radio.addCentral({ adapterAddress: '00:1a:7d:da:71:99' });
    const a = createNobleCentral(createHciNoble(radio.controller), { clock });
    const b = createNobleCentral(createHciNoble(second), { clock });
    await a.waitReady(2000);
    await b.waitReady(2000);
    assert.deepEqual(cached(), before.cache, 'no hci-socket file in the process module cache');
    assert.equal(process.listenerCount('SIGINT'), before.sigint);
    assert.equal(process.listenerCount('exit'), before.exit);
    assert.ok(radio.controller.commandLog.length > 0 && second.commandLog.length > 0, 'each noble drove its own controller');
    const addresses = [a, b].map((c) => ((c as unknown as { nobleInstance: { address: string } }).nobleInstance.address));
    assert.deepEqual(addresses, ['00:1a:7d:da:71:0a', '00:1a:7d:da:71:99'], 'Read BD_ADDR answered per controller');
    await a.close();
    await b.close();
    radio.close();
    clock.stop();
  });
});
