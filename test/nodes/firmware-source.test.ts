/**
 * The flash node's firmware sources on their own: size limits on every source (a download is cut off
 * while streaming), the firmware directory with symlinks, and unset ${ENV} settings.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as http from 'http';
import type { AddressInfo } from 'net';
import * as os from 'os';
import * as path from 'path';
import { firmwareFromMsg, withoutContent, type FirmwarePolicy } from '../../nodes/ble-ota-flash/firmware-source';
import { OtaError } from '../../lib/errors';

function codeOf(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => 'no error',
    (err: OtaError) => err.code,
  );
}

describe('flash node firmware sources', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ota-fw-'));
  const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'ota-outside-'));
  let server: http.Server;
  let host = '';
  let policy: FirmwarePolicy;
  const none = { payload: undefined, filename: undefined, url: undefined };

  before(async () => {
    fs.writeFileSync(path.join(dir, 'small.bin'), Buffer.alloc(1000, 0xe9));
    fs.writeFileSync(path.join(dir, 'big.bin'), Buffer.alloc(5000, 0xe9));
    fs.writeFileSync(path.join(outside, 'secret.bin'), 'secret');
    fs.symlinkSync(path.join(outside, 'secret.bin'), path.join(dir, 'link.bin'));
    fs.mkdirSync(path.join(dir, 'sub'));
    fs.symlinkSync(outside, path.join(dir, 'sub', 'out'));
    server = http.createServer((req, res) => {
      if (req.url === '/declared') return res.writeHead(200, { 'content-length': '5000' }).end(Buffer.alloc(5000));
      if (req.url === '/chunked') {
        // No content-length: the cap applies while streaming.
        res.writeHead(200);
        let sent = 0;
        const more = () => {
          if (sent >= 50000) return res.end();
          sent += 1000;
          res.write(Buffer.alloc(1000), more);
        };
        return more();
      }
      if (req.url === '/ok') return res.end(Buffer.alloc(1000, 0xe9));
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    policy = { firmwareDir: dir, allowedHosts: [host], maxBytes: 4096, downloadTimeoutMs: 5000 };
  });

  after(() => {
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(outside, { recursive: true, force: true });
  });

  it('limits the size of a Buffer, a file and a download (declared or streamed)', async () => {
    assert.equal(await codeOf(firmwareFromMsg({ ...none, payload: Buffer.alloc(5000) }, '', policy)), 'IMAGE_TOO_LARGE');
    assert.equal(await codeOf(firmwareFromMsg({ ...none, filename: 'big.bin' }, '', policy)), 'IMAGE_TOO_LARGE');
    assert.equal(await codeOf(firmwareFromMsg({ ...none, url: `http://${host}/declared` }, '', policy)), 'IMAGE_TOO_LARGE');
    assert.equal(await codeOf(firmwareFromMsg({ ...none, url: `http://${host}/chunked` }, '', policy)), 'IMAGE_TOO_LARGE');
    assert.equal(await codeOf(firmwareFromMsg({ ...none }, path.join(dir, 'big.bin'), policy)), 'IMAGE_TOO_LARGE');
    assert.equal((await firmwareFromMsg({ ...none, url: `http://${host}/ok` }, '', policy)).image.length, 1000);
    assert.equal(await codeOf(firmwareFromMsg({ ...none, url: `http://${host}/missing` }, '', policy)), 'DOWNLOAD_FAILED');
  });

  it('brings the manifest next to a file image, only from inside the firmware directory', async () => {
    fs.writeFileSync(path.join(dir, 'small.bin.manifest'), Buffer.alloc(236, 1));
    fs.writeFileSync(path.join(outside, 'secret.bin.manifest'), Buffer.alloc(236, 2));
    fs.writeFileSync(path.join(dir, 'signed.bin'), Buffer.alloc(100, 0xe9));
    fs.symlinkSync(path.join(outside, 'secret.bin.manifest'), path.join(dir, 'signed.bin.manifest'));
    try {
      assert.deepEqual((await firmwareFromMsg({ ...none, filename: 'small.bin' }, '', policy)).manifest, Buffer.alloc(236, 1));
      assert.deepEqual((await firmwareFromMsg({ ...none }, path.join(dir, 'small.bin'), policy)).manifest, Buffer.alloc(236, 1));
      assert.equal((await firmwareFromMsg({ ...none, payload: Buffer.alloc(10, 0xe9) }, '', policy)).manifest, undefined);
      assert.equal(await codeOf(firmwareFromMsg({ ...none, filename: 'signed.bin' }, '', policy)), 'FILE_NOT_ALLOWED');
      fs.writeFileSync(path.join(dir, 'small.bin.manifest'), Buffer.alloc(5000));
      assert.equal(await codeOf(firmwareFromMsg({ ...none, filename: 'small.bin' }, '', policy)), 'MANIFEST_INVALID');
    } finally {
      for (const f of ['small.bin.manifest', 'signed.bin', 'signed.bin.manifest']) fs.rmSync(path.join(dir, f), { force: true });
    }
  });

  it('reads only inside the firmware directory, symlinks resolved', async () => {
    assert.equal((await firmwareFromMsg({ ...none, filename: 'small.bin' }, '', policy)).image.length, 1000);
    assert.equal((await firmwareFromMsg({ ...none, filename: path.join(dir, 'small.bin') }, '', policy)).image.length, 1000);
    for (const name of ['link.bin', 'sub/out/secret.bin', '../' + path.basename(outside) + '/secret.bin', path.join(outside, 'secret.bin'), '.']) {
      assert.equal(await codeOf(firmwareFromMsg({ ...none, filename: name }, '', policy)), 'FILE_NOT_ALLOWED', name);
    }
    assert.equal(await codeOf(firmwareFromMsg({ ...none, filename: 'nope.bin' }, '', policy)), 'FILE_NOT_FOUND');
    assert.equal(await codeOf(firmwareFromMsg({ ...none, filename: 'small.bin' }, '', { ...policy, firmwareDir: '' })), 'FILE_NOT_ALLOWED');
    assert.equal(await codeOf(firmwareFromMsg({ ...none, url: `http://${host}/ok` }, '', { ...policy, allowedHosts: [] })), 'URL_NOT_ALLOWED');
    assert.equal(await codeOf(firmwareFromMsg({ ...none, url: `http://user:pw@${host}/ok` }, '', policy)), 'URL_NOT_ALLOWED');
  });

  it('never passes on bytes of what was read', () => {
    const e = withoutContent(new OtaError('NOT_ESP_IMAGE', 'This is not an ESP firmware image: it starts with byte 0x72 instead of 0xe9 (first bytes: 72 6f 6f 74 3a 78 3a 30).', { firstByte: 0x72 }));
    assert.doesNotMatch(e.message, /72|first bytes/);
    assert.equal(e.details?.firstByte, undefined);
    assert.equal(e.code, 'NOT_ESP_IMAGE');
  });
});
