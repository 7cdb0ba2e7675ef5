"""pytorch/examples ``dcgan/main.py``, CPU-sized: 32x32 digits (sklearn's 8x8 upsampled) instead
of 64x64 LSUN/CIFAR, so G and D have one stride-2 block fewer; ngf = ndf = 16. Wrapped with
gandoctor as the README Quickstart says. The console line is the original's, so
``python examples/pytorch_examples_dcgan.py ... | tee train.log`` is what ``gandoctor analyze``
reads as "console output".

Variants:

- ``healthy``: the original recipe (Adam lr 2e-4, betas (0.5, 0.999), nz 100).
- ``collapse``: G's lr 10x, nz 2, no BatchNorm in G.
- ``glr``: G's lr 10x only.
- ``hot``: lr 2e-3 for both with beta1 0.9.
- ``ddom``: D's lr 10x (2e-3).
- ``explode``: lr 0.5 for both, no BatchNorm anywhere; the loop stops on a NaN loss after
  printing and recording the step (none comes: D's sigmoid saturates first).

    python examples/pytorch_examples_dcgan.py --steps 800 --out runs/dcgan --variant ddom | tee runs/dcgan.log
"""

from __future__ import annotations

import math
import sys

import torch
import torch.nn as nn
import torch.optim as optim
from _digits import Oracle, digits_loader, parse_args, summarise

import gandoctor

VARIANTS = ("healthy", "collapse", "glr", "hot", "ddom", "explode")
opt = parse_args(VARIANTS, default_steps=800)
torch.manual_seed(opt.seed)

device = torch.device("cpu")
nz, ngf, ndf, nc = 100, 16, 16, 1
lr_g = lr_d = 0.0002
beta1 = 0.5
g_bn = d_bn = True
if opt.variant == "collapse":
    lr_g, nz, g_bn = 0.002, 2, False
elif opt.variant == "glr":
    lr_g = 0.002
elif opt.variant == "hot":
    lr_g = lr_d = 0.002
    beta1 = 0.9
elif opt.variant == "ddom":
    lr_d = 0.002
elif opt.variant == "explode":
    lr_g = lr_d = 0.5
    g_bn = d_bn = False

dataloader = digits_loader(32, 64, opt.seed)


def norm(channels, on):
    return nn.BatchNorm2d(channels) if on else nn.Identity()


# custom weights initialization called on netG and netD
def weights_init(m):
    classname = m.__class__.__name__
    if classname.find('Conv') != -1:
        torch.nn.init.normal_(m.weight, 0.0, 0.02)
    elif classname.find('BatchNorm') != -1:
        torch.nn.init.normal_(m.weight, 1.0, 0.02)
        torch.nn.init.zeros_(m.bias)


class Generator(nn.Module):
    def __init__(self):
        super(Generator, self).__init__()
        self.main = nn.Sequential(
            # input is Z, going into a convolution
            nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False),
            norm(ngf * 4, g_bn),
            nn.ReLU(True),
            # state size. (ngf*4) x 4 x 4
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            norm(ngf * 2, g_bn),
            nn.ReLU(True),
            # state size. (ngf*2) x 8 x 8
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            norm(ngf, g_bn),
            nn.ReLU(True),
            # state size. (ngf) x 16 x 16
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh()
            # state size. (nc) x 32 x 32
        )

    def forward(self, input):
        return self.main(input)


netG = Generator().to(device)
netG.apply(weights_init)
print(netG)  # as the original does; `gandoctor analyze` of the console log reads G's BatchNorm from it


class Discriminator(nn.Module):
    def __init__(self):
        super(Discriminator, self).__init__()
        self.main = nn.Sequential(
            # input is (nc) x 32 x 32
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            # state size. (ndf) x 16 x 16
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            norm(ndf * 2, d_bn),
            nn.LeakyReLU(0.2, inplace=True),
            # state size. (ndf*2) x 8 x 8
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
            norm(ndf * 4, d_bn),
            nn.LeakyReLU(0.2, inplace=True),
            # state size. (ndf*4) x 4 x 4
            nn.Conv2d(ndf * 4, 1, 4, 1, 0, bias=False),
            nn.Sigmoid()
        )

    def forward(self, input):
        output = self.main(input)
        return output.view(-1, 1).squeeze(1)


netD = Discriminator().to(device)
netD.apply(weights_init)
print(netD)

criterion = nn.BCELoss()

fixed_noise = torch.randn(64, nz, 1, 1, device=device)
real_label = 1
fake_label = 0

# setup optimizer
optimizerD = optim.Adam(netD.parameters(), lr=lr_d, betas=(beta1, 0.999))
optimizerG = optim.Adam(netG.parameters(), lr=lr_g, betas=(beta1, 0.999))

doctor = gandoctor.Doctor(generator=netG, discriminator=netD,
                          g_optimizer=optimizerG, d_optimizer=optimizerD,
                          log_dir=opt.out)

oracle = Oracle()
oracle_every = opt.oracle_every or max(1, opt.steps // 10)
niter = math.ceil(opt.steps / len(dataloader))
step = 0
stop = False
for epoch in range(niter):
    for i, data in enumerate(dataloader, 0):
        ############################
        # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
        ###########################
        # train with real
        netD.zero_grad()
        real_cpu = data[0].to(device)
        batch_size = real_cpu.size(0)
        label = torch.full((batch_size,), real_label,
                           dtype=real_cpu.dtype, device=device)

        output = netD(real_cpu)
        errD_real = criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()

        # train with fake
        noise = torch.randn(batch_size, nz, 1, 1, device=device)
        fake = netG(noise)
        label.fill_(fake_label)
        output = netD(fake.detach())
        errD_fake = criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.mean().item()
        errD = errD_real + errD_fake
        optimizerD.step()

        ############################
        # (2) Update G network: maximize log(D(G(z)))
        ###########################
        netG.zero_grad()
        label.fill_(real_label)  # fake labels are real for generator cost
        output = netD(fake)
        errG = criterion(output, label)
        errG.backward()
        D_G_z2 = output.mean().item()
        optimizerG.step()

        print('[%d/%d][%d/%d] Loss_D: %.4f Loss_G: %.4f D(x): %.4f D(G(z)): %.4f / %.4f'
              % (epoch, niter, i, len(dataloader),
                 errD.item(), errG.item(), D_x, D_G_z1, D_G_z2))
        doctor.step(d_loss=errD, g_loss=errG, real=real_cpu, fake=fake)   # once per iteration

        if step % oracle_every == 0 or step == opt.steps - 1:
            oracle.sample(netG, lambda n, gen: torch.randn(n, nz, 1, 1, generator=gen), step)
        if math.isnan(errD.item()) or math.isnan(errG.item()):
            print("NaN loss, stopping", file=sys.stderr)
            stop = True
        step += 1
        if stop or step >= opt.steps:
            stop = True
            break
    if stop:
        break

last = step - 1
oracle.sample_last(netG, lambda n, gen: torch.randn(n, nz, 1, 1, generator=gen), last)
report = doctor.report()      # also callable mid-training
print(report)                 # readable summary (rich)
doctor.close()
summarise(opt.out, opt.variant, oracle, report, last)
