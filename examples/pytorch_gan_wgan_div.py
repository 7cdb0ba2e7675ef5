"""PyTorch-GAN implementations/wgan_div/wgan_div.py on sklearn digits upsampled to 28x28, hidden widths halved.
doctor.step on every batch, g_loss=None on batches without a G step (README's wgan_gp.py note).
Quickstart lines added: Doctor(...), doctor.step(...), print(doctor.report())."""
import math
import sys

import numpy as np
import torch
import torch.autograd as autograd
import torch.nn as nn
from _digits import Oracle, digits_loader, parse_args, summarise

import gandoctor

opt = parse_args(("healthy", "glr", "ddom"), default_steps=2500)
torch.manual_seed(opt.seed); np.random.seed(opt.seed)
lr_g = lr_d = 0.0002
b1, b2 = 0.5, 0.999
latent_dim, img_size, channels, batch_size, width, n_critic = 100, 28, 1, 64, 64, 5
if opt.variant == "glr":
    lr_g = 0.002
if opt.variant == "ddom":
    lr_d = 0.002
img_shape = (channels, img_size, img_size)

class Generator(nn.Module):
    def __init__(self):
        super(Generator, self).__init__()
        def block(in_feat, out_feat, normalize=True):
            layers = [nn.Linear(in_feat, out_feat)]
            if normalize:
                layers.append(nn.BatchNorm1d(out_feat, 0.8))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            return layers
        self.model = nn.Sequential(
            *block(latent_dim, width, normalize=False),
            *block(width, width * 2),
            *block(width * 2, width * 4),
            *block(width * 4, width * 8),
            nn.Linear(width * 8, int(np.prod(img_shape))),
            nn.Tanh()
        )
    def forward(self, z):
        img = self.model(z)
        return img.view(img.shape[0], *img_shape)

class Discriminator(nn.Module):
    def __init__(self):
        super(Discriminator, self).__init__()
        self.model = nn.Sequential(
            nn.Linear(int(np.prod(img_shape)), width * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(width * 4, width * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(width * 2, 1),
        )
    def forward(self, img):
        return self.model(img.view(img.shape[0], -1))

k = 2
p = 6
generator = Generator(); discriminator = Discriminator()
dataloader = digits_loader(img_size, batch_size, opt.seed)
optimizer_G = torch.optim.Adam(generator.parameters(), lr=lr_g, betas=(b1, b2))
optimizer_D = torch.optim.Adam(discriminator.parameters(), lr=lr_d, betas=(b1, b2))
Tensor = torch.FloatTensor

doctor = gandoctor.Doctor(generator=generator, discriminator=discriminator,
                          g_optimizer=optimizer_G, d_optimizer=optimizer_D, log_dir=opt.out)
oracle = Oracle()
oracle_every = opt.oracle_every or max(1, opt.steps // 10)
n_epochs = math.ceil(opt.steps / len(dataloader))
def latent(n, gen):
    return torch.randn(n, latent_dim, generator=gen)

it = 0; batches_done = 0; stop = False
for epoch in range(n_epochs):
    for i, (imgs, _) in enumerate(dataloader):
        real_imgs = imgs.type(Tensor).requires_grad_(True)
        optimizer_D.zero_grad()
        z = Tensor(np.random.normal(0, 1, (imgs.shape[0], latent_dim)))
        fake_imgs = generator(z)
        real_validity = discriminator(real_imgs)
        fake_validity = discriminator(fake_imgs)
        real_grad_out = Tensor(real_imgs.size(0), 1).fill_(1.0)
        real_grad = autograd.grad(real_validity, real_imgs, real_grad_out, create_graph=True, retain_graph=True, only_inputs=True)[0]
        real_grad_norm = real_grad.view(real_grad.size(0), -1).pow(2).sum(1) ** (p / 2)
        fake_grad_out = Tensor(fake_imgs.size(0), 1).fill_(1.0)
        fake_grad = autograd.grad(fake_validity, fake_imgs, fake_grad_out, create_graph=True, retain_graph=True, only_inputs=True)[0]
        fake_grad_norm = fake_grad.view(fake_grad.size(0), -1).pow(2).sum(1) ** (p / 2)
        div_gp = torch.mean(real_grad_norm + fake_grad_norm) * k / 2
        d_loss = -torch.mean(real_validity) + torch.mean(fake_validity) + div_gp
        d_loss.backward()
        optimizer_D.step()
        optimizer_G.zero_grad()
        g_loss = None
        if i % n_critic == 0:
            fake_imgs = generator(z)
            fake_validity = discriminator(fake_imgs)
            g_loss = -torch.mean(fake_validity)
            g_loss.backward()
            optimizer_G.step()
            print("[Epoch %d/%d] [Batch %d/%d] [D loss: %f] [G loss: %f]" % (epoch, n_epochs, i, len(dataloader), d_loss.item(), g_loss.item()))
            batches_done += n_critic
        doctor.step(d_loss=d_loss, g_loss=g_loss, real=real_imgs, fake=fake_imgs)
        if it % oracle_every == 0 or it == opt.steps - 1:
            oracle.sample(generator, latent, it)
        if math.isnan(d_loss.item()):
            print("NaN loss, stopping", file=sys.stderr); stop = True
        it += 1
        if stop or it >= opt.steps:
            stop = True; break
    if stop:
        break
oracle.sample_last(generator, latent, it - 1)
report = doctor.report()
print(report)
print("disabled_probes:", doctor.disabled_probes)
doctor.close()
summarise(opt.out, opt.variant, oracle, report, it - 1, {"disabled_probes": str(doctor.disabled_probes)})
