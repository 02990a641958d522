"""Certificate authentication (mTLS, port 8885): a device key and certificate in DER.

Convert what the Arduino Cloud provisioning gave you (PEM) once:
    openssl ec -in key.pem -outform DER -out key.der
    openssl x509 -in cert.pem -outform DER -out cert.der
On boards with an SE050 the key stays in the secure element:
    ssl_params={"keyfile": "se05x:token=0x00000064", "certfile": "se05x:token=0x00000065"}
The server is verified against Arduino's root CA, which the library embeds.
"""

from secrets import DEVICE_ID

from tether.arduino import ArduinoCloudClient


def on_switch(client, value):
    client["led"] = value


client = ArduinoCloudClient(
    device_id=DEVICE_ID, ssl_params={"keyfile": "key.der", "certfile": "cert.der"}
)
client.register("sw1", value=None, on_write=on_switch)
client.register("led", value=None)
client.start()
